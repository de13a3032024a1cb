//! The TOML layer: a configuration file read with its spans, so that every
//! error names its key path and line, and checked against the settings'
//! own value parsers (the same code that checks a flag). Every error is
//! collected, never just the first; an unknown key is an error.

use std::collections::BTreeMap;
use std::fmt;
use std::ops::Range;

use clap::Command;
use toml::de::{DeTable, DeValue};
use toml::Spanned;

use super::schema::{Kind, Setting, PER_APP_SECTIONS};

/// Raw values by key path, as the flag would be given them.
pub type Values = BTreeMap<String, Vec<String>>;

/// What a valid file sets.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FileValues {
    /// Top-level and section keys.
    pub global: Values,
    /// `[app.NAME.SECTION]` overrides, by App name.
    pub apps: BTreeMap<String, Values>,
}

/// One error in a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileError {
    /// 1-based line, 0 when the error concerns the whole file.
    pub line: usize,
    /// 1-based column.
    pub column: usize,
    /// The key path concerned, if any.
    pub key: Option<String>,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for FileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line > 0 {
            write!(f, "line {}, column {}: ", self.line, self.column)?;
        }
        if let Some(key) = &self.key {
            write!(f, "{key}: ")?;
        }
        f.write_str(&self.message)
    }
}

impl FileError {
    /// `PATH:LINE:COLUMN: KEY: MESSAGE`, as compilers write it (editors
    /// jump to it).
    pub fn located(&self, path: &std::path::Path) -> String {
        let mut out = path.display().to_string();
        if self.line > 0 {
            out.push_str(&format!(":{}:{}", self.line, self.column));
        }
        out.push_str(": ");
        if let Some(key) = &self.key {
            out.push_str(&format!("{key}: "));
        }
        out.push_str(&self.message);
        out
    }
}

/// Line and column (1-based) of byte `offset` of `text`.
fn position(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

struct Checker<'a> {
    text: &'a str,
    settings: &'a [Setting],
    serve: &'a Command,
    errors: Vec<FileError>,
}

impl Checker<'_> {
    fn error(&mut self, span: Range<usize>, key: Option<String>, message: impl Into<String>) {
        let (line, column) = position(self.text, span.start);
        self.errors.push(FileError {
            line,
            column,
            key,
            message: message.into(),
        });
    }

    fn unknown(&mut self, span: Range<usize>, key: String, known: Vec<&str>) {
        let hint = suggest(&key, &known)
            .map(|s| format!(" (did you mean `{s}`?)"))
            .unwrap_or_default();
        self.error(
            span,
            Some(key),
            format!("unknown key{hint}; `tincan config example` lists every setting"),
        );
    }

    /// The top level: settings without a section, sections, and `app`.
    fn top(&mut self, table: &DeTable<'_>) -> FileValues {
        let mut out = FileValues::default();
        let sections = super::schema::sections(self.settings);
        for (k, v) in table {
            let name = k.get_ref().as_ref();
            if let Some(s) = self
                .settings
                .iter()
                .find(|s| s.section.is_none() && s.name == name)
            {
                if let Some(values) = self.value(s, &s.key, v) {
                    out.global.insert(s.key.clone(), values);
                }
            } else if let Some(section) = sections.iter().find(|s| **s == name) {
                self.section(section, None, v, &mut out.global);
            } else if name == "app" {
                self.apps(v, &mut out.apps);
            } else if name == "relay" {
                // Relays are lists of structured entries, read and checked
                // by the relay module (crate::relay::config).
            } else {
                let mut known: Vec<&str> = self
                    .settings
                    .iter()
                    .filter(|s| s.section.is_none())
                    .map(|s| s.name.as_str())
                    .collect();
                known.extend(sections.iter().copied());
                known.push("app");
                known.push("relay");
                self.unknown(k.span(), name.to_owned(), known);
            }
        }
        out
    }

    /// `[SECTION]` or `[app.NAME.SECTION]`: its keys into `into`.
    fn section(
        &mut self,
        section: &str,
        app: Option<&str>,
        value: &Spanned<DeValue<'_>>,
        into: &mut Values,
    ) {
        let path = match app {
            Some(app) => format!("app.{}.{section}", quote(app)),
            None => section.to_owned(),
        };
        let Some(table) = value.get_ref().as_table() else {
            self.error(
                value.span(),
                Some(path),
                format!("expected a table, found {}", value.get_ref().type_str()),
            );
            return;
        };
        for (k, v) in table {
            let name = k.get_ref().as_ref();
            let key = format!("{path}.{}", quote(name));
            match self
                .settings
                .iter()
                .find(|s| s.section == Some(section) && s.name == name)
            {
                Some(s) => {
                    if let Some(values) = self.value(s, &key, v) {
                        into.insert(s.key.clone(), values);
                    }
                }
                None => {
                    let known = self
                        .settings
                        .iter()
                        .filter(|s| s.section == Some(section))
                        .map(|s| s.name.as_str())
                        .collect();
                    self.unknown(k.span(), key, known);
                }
            }
        }
    }

    /// `[app.NAME.SECTION]` tables.
    fn apps(&mut self, value: &Spanned<DeValue<'_>>, into: &mut BTreeMap<String, Values>) {
        let Some(apps) = value.get_ref().as_table() else {
            self.error(
                value.span(),
                Some("app".into()),
                "expected a table of Apps, as [app.NAME.real_time]",
            );
            return;
        };
        for (k, v) in apps {
            let app = k.get_ref().as_ref();
            let path = format!("app.{}", quote(app));
            if app.is_empty() {
                self.error(k.span(), Some(path.clone()), "an App name cannot be empty");
            }
            let Some(table) = v.get_ref().as_table() else {
                self.error(
                    v.span(),
                    Some(path),
                    format!(
                        "expected a table of sections ({}), found {}",
                        PER_APP_SECTIONS.join(", "),
                        v.get_ref().type_str()
                    ),
                );
                continue;
            };
            let mut values = Values::new();
            for (sk, sv) in table {
                let section = sk.get_ref().as_ref();
                match PER_APP_SECTIONS.iter().find(|s| **s == section) {
                    Some(s) => self.section(s, Some(app), sv, &mut values),
                    None => self.error(
                        sk.span(),
                        Some(format!("{path}.{}", quote(section))),
                        format!(
                            "unknown key; an App's table holds only the sections it may \
                             override: {}",
                            PER_APP_SECTIONS.join(", ")
                        ),
                    ),
                }
            }
            into.insert(app.to_owned(), values);
        }
    }

    /// One value, type-checked and run through the flag's value parser.
    fn value(&mut self, s: &Setting, key: &str, v: &Spanned<DeValue<'_>>) -> Option<Vec<String>> {
        let items: Vec<&Spanned<DeValue<'_>>> = match v.get_ref() {
            DeValue::Array(a) if s.multiple => a.iter().collect(),
            _ => vec![v],
        };
        let mut out = Vec::new();
        let mut ok = true;
        for item in items {
            match scalar(s.kind, item.get_ref()) {
                Ok(text) => match check_value(self.serve, s, &text) {
                    Ok(()) => out.push(text),
                    Err(e) => {
                        self.error(item.span(), Some(key.to_owned()), e);
                        ok = false;
                    }
                },
                Err(found) => {
                    let want = if s.multiple {
                        format!("{} or an array of them", s.kind.describe())
                    } else {
                        s.kind.describe().to_owned()
                    };
                    self.error(
                        item.span(),
                        Some(key.to_owned()),
                        format!("expected {want}, found {found}"),
                    );
                    ok = false;
                }
            }
        }
        ok.then_some(out)
    }
}

/// A key as written in a path: bare when it can be, quoted otherwise.
fn quote(key: &str) -> String {
    let bare = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if bare {
        key.to_owned()
    } else {
        format!("{key:?}")
    }
}

/// A scalar as the text a flag would carry, or the TOML type found.
fn scalar(kind: Kind, v: &DeValue<'_>) -> Result<String, &'static str> {
    match (kind, v) {
        (Kind::Bool, DeValue::Boolean(b)) => Ok(b.to_string()),
        (Kind::Integer | Kind::Number, DeValue::Integer(i)) => {
            // Normalised to decimal (TOML allows 0x, 0o, 0b and `_`).
            let digits = i.as_str().replace('_', "");
            match i128::from_str_radix(&digits, i.radix()) {
                Ok(n) => Ok(n.to_string()),
                Err(_) => Err("an integer out of range"),
            }
        }
        (Kind::Number, DeValue::Float(f)) => Ok(f.as_str().replace('_', "")),
        (Kind::Text, DeValue::String(s)) => Ok(s.to_string()),
        (_, v) => Err(v.type_str()),
    }
}

/// Runs `value` through the value parser of `s`'s flag, alone, so that a
/// file value is checked by exactly the code that checks the flag.
pub fn check_value(serve: &Command, s: &Setting, value: &str) -> Result<(), String> {
    if s.kind == Kind::Bool {
        return Ok(());
    }
    let arg = serve
        .get_arguments()
        .find(|a| a.get_id().as_str() == s.id)
        .expect("every setting is an arg of serve")
        .clone()
        .env(None)
        .default_value(None)
        .required(false)
        .short(None);
    let cmd = Command::new("tincan-config")
        .no_binary_name(true)
        .disable_help_flag(true)
        .disable_version_flag(true)
        .arg(arg);
    match cmd.try_get_matches_from([format!("--{}={value}", s.long)]) {
        Ok(_) => Ok(()),
        Err(e) => {
            use std::error::Error as _;
            Err(match e.source() {
                Some(why) => format!("invalid value {value:?}: {why}"),
                None => {
                    let text = e.render().to_string();
                    let first = text.lines().next().unwrap_or_default();
                    first.trim_start_matches("error: ").to_owned()
                }
            })
        }
    }
}

/// The closest of `known` to `key`'s last part, if close enough to be a
/// typo.
fn suggest<'a>(key: &str, known: &[&'a str]) -> Option<&'a str> {
    let last = key.rsplit('.').next().unwrap_or(key);
    known
        .iter()
        .map(|k| (distance(last, k), *k))
        .filter(|(d, k)| *d <= 2.max(k.len() / 4))
        .min()
        .map(|(_, k)| k)
}

/// Levenshtein distance.
fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != *cb)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}

/// Reads a configuration file's text: every syntax error, or every error
/// of keys, types and values, each with its line.
pub fn parse(
    text: &str,
    settings: &[Setting],
    serve: &Command,
) -> Result<FileValues, Vec<FileError>> {
    let (table, syntax) = DeTable::parse_recoverable(text);
    if !syntax.is_empty() {
        return Err(syntax
            .iter()
            .map(|e| {
                let (line, column) = e.span().map_or((0, 0), |s| position(text, s.start));
                FileError {
                    line,
                    column,
                    key: None,
                    message: e.message().trim().to_owned(),
                }
            })
            .collect());
    }
    let mut checker = Checker {
        text,
        settings,
        serve,
        errors: Vec::new(),
    };
    let values = checker.top(table.get_ref());
    if checker.errors.is_empty() {
        Ok(values)
    } else {
        let mut errors = checker.errors;
        errors.sort_by_key(|e| (e.line, e.column));
        Err(errors)
    }
}
