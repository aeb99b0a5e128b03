//! Topic selectors: what a subscriber asked for, or what a token allows. Two protocols' worth:
//!
//! - Mercure 0.x selectors ([`Selector::compile`]): `*` (every topic), an exact topic, or an
//!   RFC 6570 URI template such as `https://example.com/books/{id}` that matches every topic it
//!   could expand to;
//! - Mercure 1.0 matchers: `exact` ([`Selector::exact`], byte for byte, braces and all),
//!   `urlpattern` ([`Selector::url_pattern`], the WHATWG URL Pattern standard, feature
//!   `urlpattern`, see `urlpattern.rs`), and the wildcard `*` whatever the type.
//!
//! 0.x matching follows what the Mercure hub does, which is what its clients expect: a selector
//! matches a topic when it is `*` or equal to the topic; otherwise, when it contains `{` and
//! parses as a URI template, when the topic is in the language of the regular expression that
//! Mercure's Go library (`yosida95/uritemplate`, `Template.Regexp`) builds from the template. A
//! selector that does not parse is an exact string only.
//!
//! That regular expression, which this module reproduces without a regex engine:
//! - a literal matches itself;
//! - an expression (all eight operators of RFC 6570 levels 1 to 4: `{var}`, `{+var}`,
//!   `{#var}`, `{.var}`, `{/var}`, `{;var}`, `{?var}`, `{&var}`, several variables
//!   `{x,y}`, exploded `{var*}`) is optional as a whole; when present it is the operator's
//!   prefix character (none for `{var}` and `{+var}`) followed by values separated by the
//!   operator's separator, at most one separator fewer than the variables (any number when a
//!   variable is exploded);
//! - a value is any run of the operator's allowed characters and `%XX` escapes: RFC 3986's
//!   unreserved characters and `,` (plus `=` for the named operators `;` `?` `&` and exploded
//!   variables), or unreserved and reserved characters for `+` and `#`;
//! - variable names are not matched (`{?page}` matches `?x=1`, as in Mercure), and a prefix
//!   modifier (`{var:3}`) does not limit the length.
//!
//! A compiled template is a list of literal and expression pieces. Matching runs one pass over
//! the topic per piece, keeping the set of positions the pieces so far can end at (for an
//! expression, the fewest separators used to reach each position, which dominates every other
//! way): time O(topic length x selector length), no backtracking, whatever the input.

#[cfg(feature = "urlpattern")]
use std::sync::Arc;

#[cfg(feature = "urlpattern")]
use super::urlpattern::{Pattern, TopicUrl};
use crate::store::Entry;

/// A list of topic selectors: what a subscriber asked for, or what a token allows.
///
/// Compile it once (at subscribe time, or when a token is verified) and match every event
/// against it: templates and patterns are never parsed again.
#[derive(Debug, Clone, Default)]
pub struct Selectors {
    list: Vec<Selector>,
    /// Whether one of them is `*`: every topic matches.
    any: bool,
}

impl Selectors {
    /// Compiles each 0.x selector of `sources`. Never fails: a selector that is not a valid
    /// URI template matches the topic equal to it.
    pub fn compile<I>(sources: I) -> Selectors
    where
        I: IntoIterator,
        I::Item: AsRef<str>,
    {
        Selectors::of(sources.into_iter().map(|s| Selector::compile(s.as_ref())))
    }

    /// A list of selectors compiled already.
    pub fn of(selectors: impl IntoIterator<Item = Selector>) -> Selectors {
        let list: Vec<Selector> = selectors.into_iter().collect();
        let any = list.iter().any(|s| matches!(s.kind, Kind::Any));
        Selectors { list, any }
    }

    /// Whether one of the selectors matches `topic`. A URL pattern parses the topic for the
    /// occasion: the fan-out asks [`Selectors::matches_entry`], which parses it once per event.
    pub fn matches(&self, topic: &str) -> bool {
        self.any || self.list.iter().any(|s| s.matches(topic))
    }

    /// Whether one of the selectors matches one of the topics of `entry`.
    #[inline]
    pub fn matches_entry(&self, entry: &Entry) -> bool {
        self.any || self.list.iter().any(|s| s.matches_entry(entry))
    }

    /// Whether one of the selectors matches one of `topics` (an event has one or more).
    pub fn matches_any<'a, I>(&self, topics: I) -> bool
    where
        I: IntoIterator<Item = &'a str>,
    {
        if self.any {
            return true;
        }
        topics.into_iter().any(|topic| self.matches(topic))
    }

    /// Whether every topic matches (one of the selectors is `*`).
    pub fn matches_everything(&self) -> bool {
        self.any
    }

    /// Whether there is no selector: nothing matches.
    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    pub fn len(&self) -> usize {
        self.list.len()
    }

    /// The selectors as they were written.
    pub fn iter(&self) -> impl Iterator<Item = &str> {
        self.list.iter().map(Selector::as_str)
    }

    /// The compiled selectors.
    pub fn selectors(&self) -> &[Selector] {
        &self.list
    }
}

/// One compiled topic selector.
#[derive(Debug, Clone)]
pub struct Selector {
    source: Box<str>,
    kind: Kind,
}

#[derive(Debug, Clone)]
enum Kind {
    /// `*`: every topic.
    Any,
    /// The topic equal to the source, and nothing else.
    Exact,
    /// The source is a URI template; the topic equal to the source matches too.
    Template(Template),
    /// A 1.0 `urlpattern` matcher.
    #[cfg(feature = "urlpattern")]
    UrlPattern(Arc<UrlMatcher>),
}

/// A URL pattern and the base its topics are resolved against. Shared by every selector of the
/// same pattern (see [`shared_pattern`]): a compiled pattern holds a regular expression per URL
/// component, tens of kilobytes, and an event needs matching against each distinct pattern once.
#[cfg(feature = "urlpattern")]
#[derive(Debug)]
struct UrlMatcher {
    pattern: Pattern,
    base: url::Url,
    /// Unique to this compilation: what an event remembers its match by.
    id: u64,
}

/// The compiled pattern of `source` against `base`: the one a live selector already holds, or
/// a new one. Patterns are compiled on the loop's thread (a subscription, a token), so the lock
/// is never contended; dead entries are swept as the table grows.
#[cfg(feature = "urlpattern")]
fn shared_pattern(source: &str, base: &url::Url) -> Result<Arc<UrlMatcher>, String> {
    use std::collections::HashMap;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::{Mutex, Weak};

    /// (base URL, pattern source) to the matcher compiled from them.
    type Table = HashMap<(Box<str>, Box<str>), Weak<UrlMatcher>>;
    static PATTERNS: Mutex<Option<Table>> = Mutex::new(None);
    static NEXT_ID: AtomicU64 = AtomicU64::new(1);

    let key: (Box<str>, Box<str>) = (base.as_str().into(), source.into());
    let mut table = PATTERNS
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let table = table.get_or_insert_with(HashMap::new);
    if let Some(live) = table.get(&key).and_then(Weak::upgrade) {
        return Ok(live);
    }
    let pattern = Pattern::compile(source, Some(base))?;
    let matcher = Arc::new(UrlMatcher {
        pattern,
        base: base.clone(),
        id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
    });
    if table.len() >= 64 && table.len().is_power_of_two() {
        table.retain(|_, weak| weak.strong_count() > 0);
    }
    table.insert(key, Arc::downgrade(&matcher));
    Ok(matcher)
}

/// A Mercure 1.0 matcher type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MatchType {
    Exact,
    UrlPattern,
}

impl MatchType {
    /// The type's name, as the draft spells it (`match_<name>`, `match_type`).
    pub fn name(self) -> &'static str {
        match self {
            MatchType::Exact => "exact",
            MatchType::UrlPattern => "urlpattern",
        }
    }

    /// The type of a name; `None` for a type this hub does not know.
    pub fn named(name: &str) -> Option<MatchType> {
        match name {
            "exact" => Some(MatchType::Exact),
            "urlpattern" => Some(MatchType::UrlPattern),
            _ => None,
        }
    }
}

impl Selector {
    /// Compiles a 0.x `source`: `*`, a URI template (when it contains `{` and parses as one),
    /// or an exact topic.
    pub fn compile(source: &str) -> Selector {
        let kind = if source == "*" {
            Kind::Any
        } else if source.contains('{') {
            Template::parse(source).map_or(Kind::Exact, Kind::Template)
        } else {
            Kind::Exact
        };
        Selector {
            source: source.into(),
            kind,
        }
    }

    #[cfg(feature = "jwt")]
    /// A 1.0 matcher of type `match_type` (`*` is every topic whatever the type). `base` is the
    /// hub's URL, which relative URL patterns and topics are resolved against. The error says
    /// why the value is no matcher of that type.
    pub fn matcher(
        match_type: MatchType,
        source: &str,
        hub: &crate::mercure::Hub,
    ) -> Result<Selector, String> {
        let kind = match match_type {
            _ if source == "*" => Kind::Any,
            MatchType::Exact => Kind::Exact,
            #[cfg(feature = "urlpattern")]
            MatchType::UrlPattern => Kind::UrlPattern(shared_pattern(source, hub.base())?),
            #[cfg(not(feature = "urlpattern"))]
            MatchType::UrlPattern => {
                let _ = hub;
                return Err(
                    "this ssed was built without URL Pattern support (cargo feature urlpattern)"
                        .into(),
                );
            }
        };
        Ok(Selector {
            source: source.into(),
            kind,
        })
    }

    /// A 1.0 `exact` matcher: the topic equal to `source`, braces and all (`*`: every topic).
    pub fn exact(source: &str) -> Selector {
        let kind = if source == "*" {
            Kind::Any
        } else {
            Kind::Exact
        };
        Selector {
            source: source.into(),
            kind,
        }
    }

    pub fn matches(&self, topic: &str) -> bool {
        match &self.kind {
            Kind::Any => true,
            Kind::Exact => *self.source == *topic,
            Kind::Template(template) => *self.source == *topic || template.matches(topic),
            #[cfg(feature = "urlpattern")]
            Kind::UrlPattern(matcher) => TopicUrl::parse(topic, Some(&matcher.base))
                .is_some_and(|url| matcher.pattern.matches(&url)),
        }
    }

    /// Whether the selector matches one of the topics of `entry`. A URL pattern's answer is
    /// kept by the entry, so that the pattern's other subscribers get it without matching.
    #[inline]
    fn matches_entry(&self, entry: &Entry) -> bool {
        match &self.kind {
            #[cfg(feature = "urlpattern")]
            Kind::UrlPattern(matcher) => entry.remembered(matcher.id, || {
                let mut index = 0;
                entry.topics().any(|_| {
                    let at = index;
                    index += 1;
                    entry
                        .topic_url(at, &matcher.base)
                        .is_some_and(|url| matcher.pattern.matches(url))
                })
            }),
            _ => entry.topics().any(|topic| self.matches(topic)),
        }
    }

    /// The selector as written.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// Whether the selector compiled to a URI template.
    pub fn is_template(&self) -> bool {
        matches!(self.kind, Kind::Template(_))
    }

    /// Whether the selector is an exact topic: compared as a string, nothing to compile.
    pub fn is_exact(&self) -> bool {
        matches!(self.kind, Kind::Exact)
    }

    /// The regular expression Mercure's Go library builds for this template, in the syntax of
    /// Go's and Rust's regex crates. Only tests and the fuzz target use it, to check the
    /// matcher against a regex engine.
    #[doc(hidden)]
    pub fn regex_source(&self) -> Option<String> {
        match &self.kind {
            Kind::Template(template) => Some(template.regex_source()),
            _ => None,
        }
    }
}

/// A parsed URI template: literal pieces and expressions, in order.
#[derive(Debug, Clone)]
struct Template {
    pieces: Vec<Piece>,
    /// Whether one greedy pass over the topic decides a match (see `is_one_pass`).
    one_pass: bool,
}

#[derive(Debug, Clone)]
enum Piece {
    Literal(Box<str>),
    Expression(Expression),
}

/// What one `{...}` expression can expand to (see the module documentation).
#[derive(Debug, Clone)]
struct Expression {
    /// The character that starts a non-empty expansion: `#`, `.`, `/`, `;`, `?` or `&`.
    first: Option<u8>,
    separator: u8,
    /// Characters allowed in the first value, and in the values after a separator (the two
    /// differ in `=` when only a later variable is exploded).
    head: CharClass,
    tail: CharClass,
    /// How many separators may appear; `None` when a variable is exploded.
    max_separators: Option<u32>,
}

/// A set of ASCII characters, one bit each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct CharClass(u128);

/// RFC 3986 unreserved: ALPHA DIGIT `-` `.` `_` `~`.
const UNRESERVED: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~";
/// RFC 3986 reserved: gen-delims and sub-delims.
const RESERVED: &[u8] = b":/?#[]@!$&'()*+,;=";

impl CharClass {
    const fn of(chars: &[u8]) -> CharClass {
        let mut bits = 0u128;
        let mut i = 0;
        while i < chars.len() {
            bits |= 1 << chars[i];
            i += 1;
        }
        CharClass(bits)
    }

    const fn with(self, other: CharClass) -> CharClass {
        CharClass(self.0 | other.0)
    }

    fn contains(self, byte: u8) -> bool {
        byte < 128 && self.0 >> byte & 1 == 1
    }
}

/// RFC 6570's operators, by the character after `{` (none: simple string expansion).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Operator {
    Simple,
    Reserved,
    Fragment,
    Label,
    Path,
    PathParameter,
    Query,
    QueryContinuation,
}

impl Operator {
    fn from_char(c: char) -> Option<Operator> {
        Some(match c {
            '+' => Operator::Reserved,
            '#' => Operator::Fragment,
            '.' => Operator::Label,
            '/' => Operator::Path,
            ';' => Operator::PathParameter,
            '?' => Operator::Query,
            '&' => Operator::QueryContinuation,
            _ => return None,
        })
    }

    /// The prefix of a non-empty expansion and the separator between values.
    fn first_and_separator(self) -> (Option<u8>, u8) {
        match self {
            Operator::Simple | Operator::Reserved => (None, b','),
            Operator::Fragment => (Some(b'#'), b','),
            Operator::Label => (Some(b'.'), b'.'),
            Operator::Path => (Some(b'/'), b'/'),
            Operator::PathParameter => (Some(b';'), b';'),
            Operator::Query => (Some(b'?'), b'&'),
            Operator::QueryContinuation => (Some(b'&'), b'&'),
        }
    }

    /// `+` and `#` let values contain reserved characters.
    fn allows_reserved(self) -> bool {
        matches!(self, Operator::Reserved | Operator::Fragment)
    }

    /// `;`, `?` and `&` expand to `name=value` pairs.
    fn is_named(self) -> bool {
        matches!(
            self,
            Operator::PathParameter | Operator::Query | Operator::QueryContinuation
        )
    }

    /// The characters a value may contain; `with_equals` adds `=` (named operators and
    /// exploded variables expand to `name=value`). Mercure's library also lets `,` through
    /// everywhere.
    fn class(self, with_equals: bool) -> CharClass {
        let unreserved = CharClass::of(UNRESERVED);
        if self.allows_reserved() {
            return unreserved.with(CharClass::of(RESERVED));
        }
        let class = unreserved.with(CharClass::of(b","));
        if with_equals {
            class.with(CharClass::of(b"="))
        } else {
            class
        }
    }
}

/// One variable of an expression, as far as matching cares.
struct VarSpec {
    explode: bool,
}

impl Expression {
    fn new(operator: Operator, vars: &[VarSpec]) -> Expression {
        let (first, separator) = operator.first_and_separator();
        let any_exploded = vars.iter().any(|v| v.explode);
        let first_exploded = vars.first().is_some_and(|v| v.explode);
        let max_separators = if any_exploded {
            None
        } else {
            Some(u32::try_from(vars.len().saturating_sub(1)).unwrap_or(u32::MAX))
        };
        Expression {
            first,
            separator,
            head: operator.class(operator.is_named() || first_exploded),
            tail: operator.class(operator.is_named() || any_exploded),
            max_separators,
        }
    }
}

/// Why a template does not parse; the selector is then an exact string.
#[derive(Debug)]
struct NotATemplate;

/// Where the template parser stands, as in Mercure's library.
#[derive(Clone, Copy, PartialEq, Eq)]
enum State {
    Literal,
    Operator,
    VarName,
    Prefix,
    VarList,
}

impl Template {
    /// Parses `source` with the grammar of RFC 6570 as Mercure's library reads it.
    fn parse(source: &str) -> Result<Template, NotATemplate> {
        let mut parser = Parser {
            pieces: Vec::new(),
            literal_start: 0,
            operator: Operator::Simple,
            vars: Vec::new(),
            name_start: 0,
            prefix: 0,
        };
        let mut state = State::Literal;
        let mut chars = source.char_indices();
        while let Some((at, c)) = chars.next() {
            state = match state {
                State::Literal => match c {
                    '{' => {
                        parser.end_literal(source, at);
                        State::Operator
                    }
                    '%' => {
                        skip_hex_pair(&mut chars)?;
                        State::Literal
                    }
                    c if is_literal_char(c) => State::Literal,
                    _ => return Err(NotATemplate),
                },
                State::Operator => {
                    if matches!(c, '=' | ',' | '!' | '@' | '|') {
                        return Err(NotATemplate); // reserved for future operators
                    }
                    match Operator::from_char(c) {
                        Some(operator) => {
                            parser.operator = operator;
                            parser.name_start = at + 1;
                        }
                        None => {
                            parser.operator = Operator::Simple;
                            parser.name_start = at;
                            // This character is the first of the name: read it again.
                            parser.check_name_char(source, at, c, &mut chars)?;
                        }
                    }
                    State::VarName
                }
                State::VarName => match c {
                    ':' | '*' => {
                        check_var_name(&source[parser.name_start..at])?;
                        let explode = c == '*';
                        parser.vars.push(VarSpec { explode });
                        parser.prefix = 0;
                        if explode {
                            State::VarList
                        } else {
                            State::Prefix
                        }
                    }
                    ',' | '}' => {
                        check_var_name(&source[parser.name_start..at])?;
                        parser.vars.push(VarSpec { explode: false });
                        parser.end_var_list(c, at)?
                    }
                    _ => {
                        parser.check_name_char(source, at, c, &mut chars)?;
                        State::VarName
                    }
                },
                State::Prefix => match c.to_digit(10) {
                    Some(digit) => {
                        parser.prefix = parser.prefix * 10 + digit;
                        if parser.prefix == 0 || parser.prefix > 9999 {
                            return Err(NotATemplate);
                        }
                        State::Prefix
                    }
                    None if parser.prefix == 0 => return Err(NotATemplate),
                    None => parser.end_var_list(c, at)?,
                },
                State::VarList => parser.end_var_list(c, at)?,
            };
        }
        if state != State::Literal {
            return Err(NotATemplate);
        }
        parser.end_literal(source, source.len());
        let one_pass = is_one_pass(&parser.pieces);
        Ok(Template {
            pieces: parser.pieces,
            one_pass,
        })
    }

    fn matches(&self, topic: &str) -> bool {
        let topic = topic.as_bytes();
        if !self.prefix_and_suffix_fit(topic) {
            return false;
        }
        if self.one_pass {
            return self.match_one_pass(topic);
        }
        // The literals at either end are in place (checked above): only what lies between
        // them is left to the general matcher, whose work grows with its length.
        let (mut pieces, mut topic) = (&self.pieces[..], topic);
        if let [Piece::Literal(first), rest @ ..] = pieces {
            (pieces, topic) = (rest, &topic[first.len()..]);
        }
        if let [rest @ .., Piece::Literal(last)] = pieces {
            let Some(end) = topic.len().checked_sub(last.len()) else {
                return false; // The two literals overlap in the topic.
            };
            (pieces, topic) = (rest, &topic[..end]);
        }
        // The fan-out matches every event against every template subscription: the state is
        // this thread's, reused, so that a match allocates nothing.
        SCRATCH
            .try_with(|cell| match cell.try_borrow_mut() {
                Ok(mut scratch) => {
                    let matched = match_pieces(pieces, topic, &mut scratch);
                    scratch.trim();
                    matched
                }
                Err(_) => match_pieces(pieces, topic, &mut Scratch::default()),
            })
            .unwrap_or_else(|_| match_pieces(pieces, topic, &mut Scratch::default()))
    }

    /// The general matcher over the whole template.
    #[cfg(test)]
    fn matches_with(&self, topic: &[u8], scratch: &mut Scratch) -> bool {
        match_pieces(&self.pieces, topic, scratch)
    }

    /// Matches in one greedy pass, for the templates `is_one_pass` accepts: each literal must
    /// come next in the topic, and each expression takes the longest value it can.
    fn match_one_pass(&self, topic: &[u8]) -> bool {
        let mut at = 0;
        for piece in &self.pieces {
            match piece {
                Piece::Literal(text) => {
                    if !topic[at..].starts_with(text.as_bytes()) {
                        return false;
                    }
                    at += text.len();
                }
                Piece::Expression(e) => {
                    if at == topic.len() {
                        continue; // The expression is optional.
                    }
                    if let Some(first) = e.first {
                        if topic[at] != first {
                            return false; // Only the last piece may have a first character.
                        }
                        at += 1;
                    }
                    while let Some(to) = value_step(topic, at, e.head) {
                        at = to;
                    }
                }
            }
        }
        at == topic.len()
    }

    /// A cheap refusal before any allocation: a template that starts (or ends) with a literal
    /// only matches topics that start (or end) with it. Most selectors start with a URL.
    fn prefix_and_suffix_fit(&self, topic: &[u8]) -> bool {
        let starts = match self.pieces.first() {
            Some(Piece::Literal(text)) => topic.starts_with(text.as_bytes()),
            _ => true,
        };
        let ends = match self.pieces.last() {
            Some(Piece::Literal(text)) => topic.ends_with(text.as_bytes()),
            _ => true,
        };
        starts && ends
    }

    fn regex_source(&self) -> String {
        let mut out = String::from("^");
        for piece in &self.pieces {
            match piece {
                Piece::Literal(text) => {
                    out.push('(');
                    text.chars().for_each(|c| push_regex_literal(&mut out, c));
                    out.push(')');
                }
                Piece::Expression(e) => e.write_regex(&mut out),
            }
        }
        out.push('$');
        out
    }
}

/// The parser's pending expression and the start of the literal being read.
struct Parser {
    pieces: Vec<Piece>,
    literal_start: usize,
    operator: Operator,
    vars: Vec<VarSpec>,
    name_start: usize,
    prefix: u32,
}

impl Parser {
    fn end_literal(&mut self, source: &str, end: usize) {
        if end > self.literal_start {
            let text = &source[self.literal_start..end];
            self.pieces.push(Piece::Literal(text.into()));
        }
    }

    /// After a variable: `,` starts the next one, `}` ends the expression, anything else is
    /// an error.
    fn end_var_list(&mut self, c: char, at: usize) -> Result<State, NotATemplate> {
        Ok(match c {
            ',' => {
                self.name_start = at + 1;
                State::VarName
            }
            '}' => {
                let vars = std::mem::take(&mut self.vars);
                let expression = Expression::new(self.operator, &vars);
                self.pieces.push(Piece::Expression(expression));
                self.literal_start = at + 1;
                State::Literal
            }
            _ => return Err(NotATemplate),
        })
    }

    /// A character inside a variable name: a letter, digit, `_`, `%XX`, or a `.` that neither
    /// starts the name nor follows another `.`.
    fn check_name_char(
        &self,
        source: &str,
        at: usize,
        c: char,
        chars: &mut impl Iterator<Item = (usize, char)>,
    ) -> Result<(), NotATemplate> {
        match c {
            '%' => skip_hex_pair(chars),
            '.' if at == self.name_start || source.as_bytes()[at - 1] == b'.' => Err(NotATemplate),
            '.' => Ok(()),
            c if c.is_ascii_alphanumeric() || c == '_' => Ok(()),
            _ => Err(NotATemplate),
        }
    }
}

/// A variable name is not empty and does not start or end with `.` (the characters were
/// checked as they were read).
fn check_var_name(name: &str) -> Result<(), NotATemplate> {
    if name.is_empty() || name.starts_with('.') || name.ends_with('.') {
        return Err(NotATemplate);
    }
    Ok(())
}

/// Consumes the two hex digits after a `%`.
fn skip_hex_pair(chars: &mut impl Iterator<Item = (usize, char)>) -> Result<(), NotATemplate> {
    for _ in 0..2 {
        match chars.next() {
            Some((_, c)) if c.is_ascii_hexdigit() => {}
            _ => return Err(NotATemplate),
        }
    }
    Ok(())
}

/// The characters RFC 6570 allows outside expressions (besides `%XX`): printable ASCII except
/// space `"` `'` `%` `<` `>` `\` `^` `` ` `` `{` `|` `}`, and the non-ASCII `ucschar` and
/// `iprivate` ranges.
fn is_literal_char(c: char) -> bool {
    let c = u32::from(c);
    match c {
        0x21 | 0x23..=0x24 | 0x26 | 0x28..=0x3B | 0x3D | 0x3F..=0x5B | 0x5D | 0x5F => true,
        0x61..=0x7A | 0x7E => true,
        0xA0..=0xD7FF | 0xE000..=0xF8FF | 0xF900..=0xFDCF | 0xFDF0..=0xFFEF => true,
        // Planes 1 to 16, less the last two code points of each, and E0000-E0FFF.
        0x10000.. => c & 0xFFFF <= 0xFFFD && !(0xE0000..0xE1000).contains(&c),
        _ => false,
    }
}

/// Whether a template can be matched in one greedy pass, which is the usual shape of Mercure
/// topic selectors (`https://example.com/books/{id}`, `/users/{user}/books/{book}`): every
/// expression is one unexploded variable (a single value, no separator), its value cannot
/// continue into what follows (the next piece is a literal whose first character is neither a
/// value character nor `%`, or there is none), and only the last piece may be an expression
/// with a first character (`{/id}`, `{?q}`). Then the longest value is the only one that can
/// match, and an absent expression is an empty value. Anything else takes the general matcher.
fn is_one_pass(pieces: &[Piece]) -> bool {
    pieces.iter().enumerate().all(|(i, piece)| {
        let Piece::Expression(e) = piece else {
            return true;
        };
        if e.max_separators != Some(0) {
            return false;
        }
        match pieces.get(i + 1) {
            None => true,
            Some(Piece::Expression(_)) => false,
            Some(Piece::Literal(next)) => {
                let c = next.as_bytes()[0];
                e.first.is_none() && c != b'%' && !e.head.contains(c)
            }
        }
    })
}

/// Whether `pieces` can match the whole of `topic`: the set of positions the pieces so far can
/// end at, carried from piece to piece.
fn match_pieces(pieces: &[Piece], topic: &[u8], scratch: &mut Scratch) -> bool {
    let n = topic.len();
    let Scratch { reach, next, pass } = scratch;
    // reach[i]: the pieces so far can match topic[..i].
    reach.clear();
    reach.resize(n + 1, false);
    reach[0] = true;
    next.clear();
    next.resize(n + 1, false);
    for piece in pieces {
        next.fill(false);
        match piece {
            Piece::Literal(text) => step_literal(topic, text.as_bytes(), reach, next),
            Piece::Expression(e) => step_expression(topic, e, reach, next, pass),
        }
        std::mem::swap(reach, next);
        if !reach.contains(&true) {
            return false;
        }
    }
    reach[n]
}

/// Adds to `next` every end of `literal` placed at a position in `reach`.
fn step_literal(topic: &[u8], literal: &[u8], reach: &[bool], next: &mut [bool]) {
    for (start, _) in reach.iter().enumerate().filter(|(_, r)| **r) {
        if topic[start..].starts_with(literal) {
            next[start + literal.len()] = true;
        }
    }
}

/// Per-position state of a match: where the pieces so far can end, and one expression
/// pass's own.
#[derive(Default)]
struct Scratch {
    reach: Vec<bool>,
    next: Vec<bool>,
    pass: Pass,
}

/// Per-position state of one expression pass, kept between pieces to allocate once.
#[derive(Default)]
struct Pass {
    /// head[i]: position i is reachable inside the first value.
    head: Vec<bool>,
    /// tail[i]: the fewest separators used to reach position i after a separator.
    tail: Vec<u32>,
}

/// Positions a thread's scratch keeps between matches; a longer topic's are given back.
const SCRATCH_KEEP: usize = 4096;

impl Scratch {
    fn trim(&mut self) {
        if self.reach.capacity() > SCRATCH_KEEP {
            *self = Scratch::default();
        }
    }
}

thread_local! {
    static SCRATCH: std::cell::RefCell<Scratch> = std::cell::RefCell::new(Scratch::default());
}

const UNREACHED: u32 = u32::MAX;

/// Adds to `next` every position an expansion of `e` can end at, starting from `reach`.
fn step_expression(
    topic: &[u8],
    e: &Expression,
    reach: &[bool],
    next: &mut [bool],
    scratch: &mut Pass,
) {
    // The whole expression is optional.
    next.copy_from_slice(reach);
    let n = topic.len();
    scratch.head.clear();
    scratch.head.resize(n + 1, false);
    scratch.tail.clear();
    scratch.tail.resize(n + 1, UNREACHED);
    let (head, tail) = (&mut scratch.head, &mut scratch.tail);
    for (i, &r) in reach.iter().enumerate() {
        if !r {
            continue;
        }
        match e.first {
            None => head[i] = true,
            Some(first) if topic.get(i) == Some(&first) => head[i + 1] = true,
            Some(_) => {}
        }
    }
    let max = e.max_separators.unwrap_or(u32::MAX);
    // Every move goes forward, so one pass in order settles each position before it is read.
    for i in 0..=n {
        if head[i] {
            next[i] = true;
            if let Some(to) = value_step(topic, i, e.head) {
                head[to] = true;
            }
            if topic.get(i) == Some(&e.separator) && max >= 1 {
                tail[i + 1] = tail[i + 1].min(1);
            }
        }
        let used = tail[i];
        if used != UNREACHED {
            next[i] = true;
            if let Some(to) = value_step(topic, i, e.tail) {
                tail[to] = tail[to].min(used);
            }
            if topic.get(i) == Some(&e.separator) && used < max {
                tail[i + 1] = tail[i + 1].min(used + 1);
            }
        }
    }
}

/// Where one character of a value starting at `i` ends: after an allowed character, or after
/// a `%XX` escape.
fn value_step(topic: &[u8], i: usize, class: CharClass) -> Option<usize> {
    let byte = *topic.get(i)?;
    if class.contains(byte) {
        return Some(i + 1);
    }
    let escape = topic.get(i..i + 3)?;
    (byte == b'%' && escape[1].is_ascii_hexdigit() && escape[2].is_ascii_hexdigit())
        .then_some(i + 3)
}

impl Expression {
    /// The expression's part of the regex (see `Selector::regex_source`), written as Mercure's
    /// library writes it.
    fn write_regex(&self, out: &mut String) {
        if let Some(first) = self.first {
            out.push_str("(?:");
            push_regex_literal(out, char::from(first));
        }
        out.push('(');
        write_class(out, self.head);
        match self.max_separators {
            Some(0) => {}
            max => {
                out.push_str("(?:");
                push_regex_literal(out, char::from(self.separator));
                write_class(out, self.tail);
                out.push(')');
                match max {
                    Some(max) => out.push_str(&format!("{{0,{max}}}")),
                    None => out.push('*'),
                }
            }
        }
        out.push(')');
        if self.first.is_some() {
            out.push(')');
        }
        out.push('?');
    }
}

/// Writes `c`, escaped as Go's `regexp.QuoteMeta` escapes it.
fn push_regex_literal(out: &mut String, c: char) {
    if "\\.+*?()|[]{}^$".contains(c) {
        out.push('\\');
    }
    out.push(c);
}

fn write_class(out: &mut String, class: CharClass) {
    out.push_str("(?:(?:[");
    for byte in 0..128u8 {
        if class.contains(byte) {
            out.push_str(&format!("\\x{byte:02x}"));
        }
    }
    out.push_str("]|%[[:xdigit:]][[:xdigit:]])*)");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matches(selector: &str, topic: &str) -> bool {
        Selector::compile(selector).matches(topic)
    }

    #[test]
    fn star_matches_every_topic() {
        for topic in ["", "a", "https://example.com/books/1", "{x}"] {
            assert!(matches("*", topic), "{topic}");
        }
        assert!(!matches("**", "a"));
    }

    #[test]
    fn exact_selector_matches_only_its_topic() {
        assert!(matches("https://example.com/a", "https://example.com/a"));
        assert!(!matches("https://example.com/a", "https://example.com/a/"));
        assert!(!matches("https://example.com/a", "https://example.com/A"));
        assert!(!matches("a", ""));
        assert!(!Selector::compile("https://example.com/a").is_template());
    }

    #[test]
    fn simple_expression_matches_one_segment() {
        let s = "https://example.com/{foo}/bar";
        assert!(Selector::compile(s).is_template());
        assert!(matches(s, "https://example.com/foo/bar"));
        assert!(
            matches(s, "https://example.com//bar"),
            "the expression may be empty"
        );
        assert!(!matches(s, "https://example.com/foo/bar/baz"));
        assert!(
            !matches(s, "https://example.com/a/b/bar"),
            "no / in a simple value"
        );
        assert!(!matches(s, "https://example.org/foo/bar"));
    }

    #[test]
    fn several_variables_in_several_expressions() {
        let s = "https://example.com/{firstname}/{lastname}";
        assert!(matches(s, "https://example.com/kevin/dunglas"));
        assert!(!matches(s, "https://example.com/kevin"));
        let s = "https://example.com/books/{id}/chapters/{chapter}.json";
        assert!(matches(s, "https://example.com/books/42/chapters/7.json"));
        assert!(matches(
            s,
            "https://example.com/books/a%20b/chapters/x~y_z.json"
        ));
        assert!(!matches(s, "https://example.com/books/42/chapter/7.json"));
        assert!(!matches(s, "https://example.com/books/42/chapters/7.xml"));
    }

    #[test]
    fn values_take_percent_escapes_but_not_broken_ones() {
        let s = "/users/{id}";
        assert!(matches(s, "/users/%2F%c3%a9"));
        assert!(!matches(s, "/users/%2"));
        assert!(!matches(s, "/users/%zz"));
        assert!(!matches(s, "/users/a b"));
        assert!(!matches(s, "/users/é"), "non-ASCII must be escaped");
    }

    #[test]
    fn reserved_expansion_takes_slashes_and_reserved_characters() {
        let s = "{scheme}://{+host}/demo/books/{id}.jsonld";
        assert!(matches(s, "https://localhost/demo/books/1.jsonld"));
        assert!(matches(
            s,
            "https://example.com:8443/x/y/demo/books/1.jsonld"
        ));
        assert!(!matches(s, "https://localhost/demo/books/1/2.jsonld"));
        assert!(matches("/files{+path}", "/files/a/b?c=d#e"));
        assert!(!matches("/files{path}", "/files/a/b"));
        assert!(matches("/files{#frag}", "/files#a/b,c"));
        assert!(matches("/files{#frag}", "/files"));
        assert!(!matches("/files{#frag}", "/filesa"));
    }

    #[test]
    fn path_expansion_counts_its_segments() {
        let s = "/.well-known/mercure/subscriptions{/topic}{/subscriber}";
        assert!(matches(s, "/.well-known/mercure/subscriptions"));
        assert!(matches(s, "/.well-known/mercure/subscriptions/t"));
        assert!(matches(s, "/.well-known/mercure/subscriptions/t/s"));
        assert!(!matches(s, "/.well-known/mercure/subscriptions/t/s/x"));
        // {/x,y}: at most two segments; {/x*}: any number.
        assert!(matches("/a{/x,y}", "/a/1/2"));
        assert!(!matches("/a{/x,y}", "/a/1/2/3"));
        assert!(matches("/a{/x*}", "/a/1/2/3/4"));
        assert!(!matches("/a{/x*}", "/a/1/2?3"));
    }

    #[test]
    fn label_and_path_parameter_expansions() {
        assert!(matches("file{.ext}", "file.tar"));
        assert!(matches("file{.ext}", "file"));
        assert!(matches("file{.a,b}", "file.tar.gz"));
        assert!(!matches("file{.ext}", "file-tar"));
        assert!(matches("/map{;x,y}", "/map;x=1;y=2"));
        assert!(!matches("/map{;x,y}", "/map;x=1;y=2;z=3"));
        assert!(!matches("/map{;x}", "/map;x/1"));
    }

    #[test]
    fn query_expansions_take_name_value_pairs() {
        let s = "https://example.com/search{?q,page}";
        assert!(matches(s, "https://example.com/search"));
        assert!(matches(s, "https://example.com/search?q=rust&page=2"));
        assert!(
            matches(s, "https://example.com/search?anything=1"),
            "names are not checked"
        );
        assert!(!matches(s, "https://example.com/search?q=1&page=2&x=3"));
        assert!(matches("/s{?q*}", "/s?a=1&b=2&c=3"));
        assert!(matches("/s?fixed=1{&x}", "/s?fixed=1&x=2"));
        assert!(!matches("/s{?q}", "/s?q=a/b"));
    }

    #[test]
    fn explode_allows_equals_where_a_plain_value_does_not() {
        // Mercure's library: a simple value takes `=` only when exploded.
        assert!(!matches("/k/{x}", "/k/a=1"));
        assert!(matches("/k/{x*}", "/k/a=1,b=2"));
        // Only a later variable exploded: `=` after the first comma only.
        assert!(matches("/k/{x,y*}", "/k/a,b=1"));
        assert!(!matches("/k/{x,y*}", "/k/a=1"));
    }

    #[test]
    fn prefix_modifier_does_not_limit_length() {
        assert!(matches("/d/{term:1}/{term}", "/d/cat/cat"));
        assert!(!Selector::compile("/d/{term:0}").is_template());
        assert!(!Selector::compile("/d/{term:10000}").is_template());
        assert!(Selector::compile("/d/{term:9999}").is_template());
    }

    #[test]
    fn a_template_that_does_not_parse_is_an_exact_string() {
        for s in [
            "https://example.com/{",
            "https://example.com/{id",
            "https://example.com/{}",
            "https://example.com/{a b}",
            "https://example.com/{=a}",
            "https://example.com/{|a}",
            "https://example.com/{a}}",
            "https://example.com/ {a}",
            "https://example.com/{.a.}",
            "https://example.com/{a..b}",
            "https://example.com/{a:}",
            "https://example.com/{a*b}",
            "https://example.com/%zz{a}",
            "https://example.com/{a}\u{FFFD}",
            "https://example.com/{é}",
        ] {
            let selector = Selector::compile(s);
            assert!(!selector.is_template(), "{s}");
            assert!(selector.matches(s), "{s} matches itself");
            assert!(!selector.matches("https://example.com/x"), "{s}");
        }
        // Variable names may hold dots and escapes; literals may hold non-ASCII.
        assert!(Selector::compile("/{a.b}/{a%20b}/é/{c_1}").is_template());
    }

    #[test]
    fn a_template_matches_the_topic_equal_to_it() {
        // Mercure compares the strings first: `{` is not a value character.
        assert!(matches("/books/{id}", "/books/{id}"));
    }

    #[test]
    fn long_hostile_topics_finish_without_backtracking() {
        // Many expressions that can each take any run of `a`, and a topic that almost
        // matches: a backtracking matcher would try every split.
        let selector = Selector::compile(&("{a}".repeat(200) + "b"));
        let topic = "a".repeat(100_000);
        assert!(!selector.matches(&topic));
        assert!(selector.matches(&(topic.clone() + "b")));
        let selector = Selector::compile(&"{/a*}{?b*}{+c}".repeat(50));
        assert!(selector.matches(&"/a/a&a?".repeat(5_000)));
    }

    #[test]
    fn selectors_match_when_any_selector_does() {
        let s = Selectors::compile(["https://example.com/a", "https://example.com/users/{id}"]);
        assert_eq!(s.len(), 2);
        assert!(s.matches("https://example.com/a"));
        assert!(s.matches("https://example.com/users/7"));
        assert!(!s.matches("https://example.com/b"));
        assert!(s.matches_any(["x", "https://example.com/users/8"]));
        assert!(!s.matches_any(["x", "y"]));
        assert!(!s.matches_everything());
        let written: Vec<&str> = s.iter().collect();
        assert_eq!(
            written,
            ["https://example.com/a", "https://example.com/users/{id}"]
        );

        let none = Selectors::compile(Vec::<String>::new());
        assert!(none.is_empty());
        assert!(!none.matches("a"));
        assert!(!none.matches_any(["a"]));

        let all = Selectors::compile(vec!["x".to_string(), "*".to_string()]);
        assert!(all.matches_everything());
        assert!(all.matches_any(["anything"]));
    }

    /// A small deterministic generator (xorshift), so the comparison below is reproducible.
    struct Random(u64);

    impl Random {
        fn below(&mut self, n: usize) -> usize {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            (self.0 % n as u64) as usize
        }

        fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
            items[self.below(items.len())]
        }
    }

    /// Random selectors (mostly templates, some malformed) and topics, some built to match.
    fn random_case(random: &mut Random) -> (String, String) {
        const LITERALS: &[&str] = &[
            "/",
            "a",
            "https://x.org/",
            ".",
            "?",
            "&",
            "é",
            "%41",
            "=",
            "-",
        ];
        const OPERATORS: &[&str] = &["", "", "+", "#", ".", "/", ";", "?", "&"];
        const NAMES: &[&str] = &["x", "y", "id", "a.b", "n:3", "v*", "w*"];
        const BROKEN: &[&str] = &["{", "}", "{}", "{x", "%4", " ", "{=x}"];
        const VALUE_BITS: &[&str] = &[
            "a", "Z9", "-", ".", "_", "~", ",", "=", "/", "?", "#", "&", ";", ":", "%2F", "%4",
            "%", "é", " ", "+", "!", "[", "@",
        ];
        let mut selector = String::new();
        let mut topic = String::new();
        for _ in 0..1 + random.below(4) {
            match random.below(8) {
                0..=2 => {
                    let literal = random.pick(LITERALS);
                    selector.push_str(literal);
                    topic.push_str(literal);
                }
                3 => selector.push_str(random.pick(BROKEN)),
                _ => {
                    selector.push('{');
                    selector.push_str(random.pick(OPERATORS));
                    for i in 0..1 + random.below(3) {
                        if i > 0 {
                            selector.push(',');
                        }
                        selector.push_str(random.pick(NAMES));
                    }
                    selector.push('}');
                    for _ in 0..random.below(5) {
                        topic.push_str(random.pick(VALUE_BITS));
                    }
                }
            }
        }
        if random.below(4) == 0 {
            topic.push_str(random.pick(VALUE_BITS));
        }
        (selector, topic)
    }

    /// The matcher against a regex engine running the expression Mercure would build from the
    /// same template. Both read the character classes from the compiled template, so this
    /// checks the matching (separators, escapes, optional pieces); the tests above pin the
    /// classes themselves.
    #[test]
    fn the_one_pass_matcher_agrees_with_the_general_one() {
        let mut random = Random(0x5eed_1234_abcd_0002);
        let (mut one_pass, mut several_pieces, mut matched) = (0, 0, 0);
        for round in 0..100_000 {
            // Half the cases from the usual generator, half alternating literals and variables
            // as path-like selectors are written.
            let (source, topic) = if round % 2 == 0 {
                random_case(&mut random)
            } else {
                path_like_case(&mut random)
            };
            let Kind::Template(template) = Selector::compile(&source).kind else {
                continue;
            };
            if !template.one_pass {
                continue;
            }
            let bytes = topic.as_bytes();
            let quick = template.match_one_pass(bytes);
            let general = template.matches_with(bytes, &mut Scratch::default());
            assert_eq!(quick, general, "{source:?} {topic:?}");
            one_pass += 1;
            several_pieces += usize::from(template.pieces.len() > 2);
            matched += usize::from(quick);
        }
        assert!(
            one_pass > 5_000 && several_pieces > 1_000 && matched > 1_000,
            "{one_pass} one-pass templates, {several_pieces} of more than two pieces, {matched} matched"
        );
    }

    /// Literals and single variables in turn (`/a/{x}/b{y}`), and a topic of literals and
    /// value characters in turn, sometimes the template's literals.
    fn path_like_case(random: &mut Random) -> (String, String) {
        const LITERALS: &[&str] = &["/", "https://x.org/", "/a/", "?", "#", "&", ":", "é", "@"];
        const OPERATORS: &[&str] = &["", "", "+", "/", "?"];
        const VALUE_BITS: &[&str] = &["a", "1", "-", ".", "~", ",", "%2F", "%4", "/", "?", "é"];
        let (mut selector, mut topic) = (String::new(), String::new());
        for i in 0..2 + random.below(5) {
            if i % 2 == 0 {
                let literal = random.pick(LITERALS);
                selector.push_str(literal);
                topic.push_str(if random.below(8) == 0 {
                    random.pick(LITERALS)
                } else {
                    literal
                });
            } else {
                selector.push('{');
                selector.push_str(random.pick(OPERATORS));
                selector.push_str(random.pick(&["x", "id", "v:3"]));
                selector.push('}');
                for _ in 0..random.below(4) {
                    topic.push_str(random.pick(VALUE_BITS));
                }
            }
        }
        (selector, topic)
    }

    #[test]
    fn literals_at_both_ends_may_not_overlap() {
        // Not one pass: `.` is a value character, so `{x}` could run into `.a`.
        assert!(!matches("a.{x}.a", "a.a"), "one dot cannot be both ends");
        assert!(matches("a.{x}.a", "a..a"));
        assert!(matches("a.{x}.a", "a.b.c.a"));
        assert!(!matches("a.{x}.a", "a."));
    }

    #[test]
    fn usual_selectors_take_the_one_pass_matcher() {
        for source in [
            "https://example.com/books/{id}",
            "https://example.com/{section}/{id}",
            "/users/{user}/books/{book}",
            "{+path}",
            "https://example.com/books{/id}",
            "https://example.com/search{?q}",
        ] {
            let Kind::Template(template) = Selector::compile(source).kind else {
                panic!("{source} is a template");
            };
            assert!(template.one_pass, "{source}");
        }
        for source in [
            "{scheme}://{+host}/demo/books/{id}.jsonld",
            "{/a}/b",
            "{x,y}",
            "{list*}",
            "{a}{b}",
            "/{+path}/x",
            "{id}-{n}",
            "/books/{id}.jsonld",
        ] {
            let Kind::Template(template) = Selector::compile(source).kind else {
                panic!("{source} is a template");
            };
            assert!(!template.one_pass, "{source}");
        }
    }

    #[test]
    fn matching_agrees_with_the_regex_mercure_builds() {
        let mut random = Random(0x5eed_1234_abcd_0001);
        let (mut templates, mut matched) = (0, 0);
        for _ in 0..20_000 {
            let (source, topic) = random_case(&mut random);
            let selector = Selector::compile(&source);
            let Some(regex) = selector.regex_source() else {
                assert_eq!(
                    selector.matches(&topic),
                    source == topic,
                    "{source:?} {topic:?}"
                );
                continue;
            };
            templates += 1;
            let engine = regex_lite::Regex::new(&regex).expect("the regex compiles");
            let expected = source == topic || engine.is_match(&topic);
            matched += usize::from(expected);
            assert_eq!(
                selector.matches(&topic),
                expected,
                "{source:?} {topic:?} {regex}"
            );
        }
        // The generator must exercise both outcomes, or the comparison proves little.
        assert!(templates > 5_000, "{templates} templates");
        assert!(
            matched > 1_000 && matched < templates - 1_000,
            "{matched}/{templates} matched"
        );
    }
}

#[cfg(all(test, feature = "urlpattern"))]
mod shared_pattern_tests {
    use super::*;

    #[test]
    fn selectors_of_one_pattern_share_its_compilation_and_an_event_matches_it_once() {
        let hub = crate::mercure::Hub::new("https://hub.test/.well-known/mercure", None).unwrap();
        let pattern = "https://x.test/shared/:id";
        let a = Selector::matcher(MatchType::UrlPattern, pattern, &hub).unwrap();
        let b = Selector::matcher(MatchType::UrlPattern, pattern, &hub).unwrap();
        let (Kind::UrlPattern(a_matcher), Kind::UrlPattern(b_matcher)) = (&a.kind, &b.kind) else {
            panic!("not patterns");
        };
        assert!(Arc::ptr_eq(a_matcher, b_matcher));
        let other = Selector::matcher(MatchType::UrlPattern, "https://x.test/other/:id", &hub);
        let Kind::UrlPattern(other) = other.unwrap().kind else {
            panic!("not a pattern");
        };
        assert_ne!(other.id, a_matcher.id);
        let event = crate::event::Event::new("x").topic("https://x.test/shared/1");
        let entry = Entry::new(
            crate::frame::encode("1", "", None, "x"),
            crate::event::Topics::of(&event),
            false,
        );
        let mut asked = 0;
        for _ in 0..3 {
            assert!(entry.remembered(a_matcher.id, || {
                asked += 1;
                true
            }));
        }
        assert_eq!(asked, 1, "matched once, remembered after");
        assert!(Selectors::of([a.clone(), b]).matches_entry(&entry));
        assert!(
            !Selectors::of([Selector::exact("https://x.test/shared/1x")]).matches_entry(&entry)
        );
    }
}
