//! Command-line options shared by every subcommand.

use std::collections::HashMap;
use std::net::SocketAddrV4;

/// Command-line options as `--name value` pairs (and bare `--flag`s, stored as "").
pub struct Options(HashMap<String, String>);

impl Options {
    pub fn parse(args: &[String], flags: &[&str]) -> Result<Options, String> {
        let mut map = HashMap::new();
        let mut i = 0;
        while i < args.len() {
            let name = args[i].strip_prefix("--").ok_or_else(|| format!("unexpected argument {}", args[i]))?;
            if flags.contains(&name) {
                map.insert(name.to_string(), String::new());
                i += 1;
                continue;
            }
            let value = args.get(i + 1).ok_or_else(|| format!("--{name} needs a value"))?;
            map.insert(name.to_string(), value.clone());
            i += 2;
        }
        Ok(Options(map))
    }

    pub fn text(&self, name: &str, default: &str) -> String {
        self.0.get(name).cloned().unwrap_or_else(|| default.to_string())
    }

    pub fn number<T: std::str::FromStr>(&self, name: &str, default: T) -> Result<T, String> {
        match self.0.get(name) {
            None => Ok(default),
            Some(v) => v.parse().map_err(|_| format!("--{name}: not a number: {v}")),
        }
    }

    pub fn has(&self, name: &str) -> bool {
        self.0.contains_key(name)
    }

    pub fn target(&self) -> Result<SocketAddrV4, String> {
        let text = self.0.get("target").ok_or("--target is required")?;
        let addr: SocketAddrV4 = text.parse().map_err(|_| format!("--target: not IPv4:PORT: {text}"))?;
        // Load is only ever sent to this machine.
        if addr.ip().octets()[0] != 127 {
            return Err(format!("--target must be a loopback address (127.x.x.x), not {addr}"));
        }
        Ok(addr)
    }
}
