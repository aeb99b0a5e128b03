//! The figures of a run: printed as a table, then as one JSON line for benches/run.py.

/// The figures of one run, in order, printed as a table and as one JSON line.
pub struct Report {
    fields: Vec<(String, Value)>,
}

enum Value {
    Num(f64),
    Text(String),
}

impl Report {
    pub fn new(scenario: &str, label: &str) -> Report {
        let mut report = Report { fields: Vec::new() };
        report.text("scenario", scenario);
        report.text("server", label);
        report
    }

    pub fn num(&mut self, key: &str, value: f64) {
        self.fields.push((key.to_string(), Value::Num(value)));
    }

    pub fn text(&mut self, key: &str, value: &str) {
        self.fields.push((key.to_string(), Value::Text(value.to_string())));
    }

    pub fn get(&self, key: &str) -> Option<f64> {
        self.fields.iter().find(|(k, _)| k == key).and_then(|(_, v)| match v {
            Value::Num(n) => Some(*n),
            Value::Text(_) => None,
        })
    }

    pub fn print(&self) {
        for (key, value) in &self.fields {
            match value {
                Value::Num(n) => println!("  {key:<32} {}", format_number(*n)),
                Value::Text(t) if !t.is_empty() => println!("  {key:<32} {t}"),
                Value::Text(_) => {}
            }
        }
        println!("{}", self.json());
    }

    fn json(&self) -> String {
        let parts: Vec<String> = self
            .fields
            .iter()
            .map(|(key, value)| match value {
                Value::Num(n) if n.is_finite() => format!("\"{key}\":{}", round_for_json(*n)),
                Value::Num(_) => format!("\"{key}\":null"),
                Value::Text(t) => format!("\"{key}\":\"{}\"", json_escape(t)),
            })
            .collect();
        format!("{{{}}}", parts.join(","))
    }
}

fn format_number(n: f64) -> String {
    if n.fract() == 0.0 && n.abs() < 1e15 {
        format!("{}", n as i64)
    } else {
        format!("{n:.3}")
    }
}

fn round_for_json(n: f64) -> String {
    if n.fract() == 0.0 && n.abs() < 1e15 {
        format!("{}", n as i64)
    } else {
        format!("{:.4}", n)
    }
}

fn json_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out
}
