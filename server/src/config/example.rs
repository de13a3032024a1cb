//! `tincan config example`: a configuration file with every setting, its
//! help, flag, environment variable and default, generated from the flags'
//! definitions so it cannot drift from `--help`. Every setting with a
//! default is written out with it, so the example is also a check that
//! every default parses; settings without one are commented out.

use super::aliases::ALIASES;
use super::schema::{Kind, Setting, PER_APP_SECTIONS};
use super::{ordered, toml_values, Definition};

/// Wraps `text` into `# ` comment lines of at most 78 columns.
fn comment(out: &mut String, text: &str) {
    for paragraph in text.split("\n\n") {
        let mut line = String::from("#");
        for word in paragraph.split_whitespace() {
            if line.len() + 1 + word.len() > 78 && line.len() > 1 {
                out.push_str(&line);
                out.push('\n');
                line = String::from("#");
            }
            line.push(' ');
            line.push_str(word);
        }
        out.push_str(&line);
        out.push('\n');
    }
}

fn setting(out: &mut String, s: &Setting) {
    comment(out, &s.help);
    let value = match s.kind {
        Kind::Bool => String::new(),
        _ => s
            .value_name
            .as_deref()
            .map(|v| format!(" {v}"))
            .unwrap_or_default(),
    };
    let flag = match s.short {
        Some(c) => format!("-{c}, --{}{value}", s.long),
        None => format!("--{}{value}", s.long),
    };
    let secret = if s.secret { "; a secret" } else { "" };
    out.push_str(&format!("# flag: {flag}; env: {}{secret}\n", s.env));
    if s.default.is_empty() && !s.multiple {
        let placeholder = s.value_name.as_deref().unwrap_or("VALUE");
        match s.kind {
            Kind::Text => out.push_str(&format!("# {} = \"{placeholder}\"\n", s.name)),
            _ => out.push_str(&format!("# {} = {placeholder}\n", s.name)),
        }
    } else {
        out.push_str(&format!("{} = {}\n", s.name, toml_values(s, &s.default)));
    }
}

/// The example file.
pub fn example(def: &Definition) -> String {
    let mut out = String::new();
    out.push_str(
        "# tincan configuration (`tincan serve --config FILE`), printed by\n\
         # `tincan config example`: every setting with its default.\n\
         #\n\
         # Precedence: flags > environment variables > this file > defaults.\n\
         # Each key's environment variable is TINCAN_ and its path in capitals\n\
         # (limits.max_connections: TINCAN_LIMITS_MAX_CONNECTIONS). Aliases:\n",
    );
    for alias in ALIASES {
        comment(&mut out, &format!("  {}", alias.doc));
    }
    out.push_str(
        "#\n\
         # `tincan serve --profile go-rtmp-server` (or TINCAN_PROFILE) gives these\n\
         # variables the Go RTMP server's defaults, below this file: flags >\n\
         # environment > this file > profile > defaults.\n\
         #\n\
         # Seconds (SECS) may have a fraction. SIGHUP reads this file again;\n\
         # `tincan config check FILE` reports every error in it.\n\n",
    );
    let mut section = None;
    for s in ordered(def.settings()) {
        if s.section != section {
            section = s.section;
            out.push_str(&format!("[{}]\n\n", s.section.unwrap_or_default()));
        }
        setting(&mut out, s);
        out.push('\n');
    }
    out.push_str(&format!(
        "# Per-App settings: an [app.NAME.SECTION] table overrides, for the App\n\
         # NAME, keys of the sections {} (the sections above are the\n\
         # default of every App). For example:\n\
         #\n\
         # [app.live.real_time]\n\
         # audio_lifetime = 1\n\
         # video_lifetime = 1.5\n\
         #\n\
         # [app.private.auth]\n\
         # key = [\"another secret\"]\n",
        PER_APP_SECTIONS
            .iter()
            .map(|s| format!("[{s}]"))
            .collect::<Vec<_>>()
            .join(" and ")
    ));
    out
}
