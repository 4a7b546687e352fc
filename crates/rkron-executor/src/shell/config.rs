//! The `shell` executor's configuration keys and the shell-word splitting of `command`.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use base64::Engine as _;

/// Validated configuration of one shell execution.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShellConfig {
    /// The command line as configured; used verbatim in kill messages.
    pub command: String,
    /// Whether `command` runs through `/bin/sh -c` (otherwise it is split into words).
    pub shell: bool,
    /// Variables added to the inherited environment, in configuration order.
    pub env: Vec<(String, String)>,
    /// The working directory.
    pub cwd: Option<PathBuf>,
    /// The timeout and its configured text.
    pub timeout: Option<(Duration, String)>,
    /// The memory limit of the process tree in bytes.
    pub mem_limit: Option<u64>,
    /// Bytes written to the process's standard input.
    pub payload: Option<Vec<u8>>,
    /// The `user[:group]` to run as.
    pub su: Option<String>,
}

impl ShellConfig {
    /// Parses a job's `executor_config`; returns the error text of the execution on failure.
    pub fn from_config(config: &BTreeMap<String, String>) -> Result<Self, String> {
        let value = |key: &str| config.get(key).map(String::as_str).unwrap_or_default();
        let command = value("command");
        if command.trim().is_empty() {
            return Err("shell: Command missing".to_owned());
        }
        let timeout = match value("timeout") {
            "" => None,
            text => {
                let duration = rkron_core::duration::parse_go_duration(text)
                    .map_err(|error| format!("shell: invalid timeout {text:?}: {error}"))?;
                // A zero timeout means none rather than an immediate kill.
                Some((duration, text.to_owned())).filter(|(duration, _)| !duration.is_zero())
            }
        };
        let mem_limit = rkron_core::memlimit::parse_mem_limit(value("mem_limit"))
            .map_err(|error| format!("shell: {error}"))?;
        let payload = match value("payload") {
            "" => None,
            text => Some(
                base64::engine::general_purpose::STANDARD
                    .decode(text.trim())
                    .map_err(|error| format!("shell: invalid base64 payload: {error}"))?,
            ),
        };
        let non_empty = |key: &str| Some(value(key)).filter(|text| !text.is_empty());
        Ok(Self {
            command: command.to_owned(),
            shell: parse_go_bool(value("shell")),
            env: parse_env_list(value("env")),
            cwd: non_empty("cwd").map(PathBuf::from),
            timeout,
            mem_limit,
            payload,
            su: non_empty("su").map(str::to_owned),
        })
    }

    /// Returns the program and its arguments.
    pub fn argv(&self) -> Result<Vec<String>, String> {
        if self.shell {
            return Ok(vec![
                "/bin/sh".to_owned(),
                "-c".to_owned(),
                self.command.clone(),
            ]);
        }
        let words = split_command_line(&self.command)?;
        if words.is_empty() {
            return Err("shell: Command missing".to_owned());
        }
        Ok(words)
    }
}

/// Returns Go's `strconv.ParseBool` value of `text`, with invalid text meaning `false`.
fn parse_go_bool(text: &str) -> bool {
    matches!(text, "1" | "t" | "T" | "true" | "TRUE" | "True")
}

/// Parses the comma-separated `KEY=value` list of the `env` key.
///
/// Entries without `=` and entries with an empty key are ignored.
fn parse_env_list(text: &str) -> Vec<(String, String)> {
    text.split(',')
        .filter_map(|entry| entry.split_once('='))
        .filter(|(key, _)| !key.is_empty())
        .map(|(key, value)| (key.to_owned(), value.to_owned()))
        .collect()
}

/// Splits a command line into words with POSIX shell quoting rules, as Dkron's `go-shellwords`.
///
/// Single quotes keep everything literally; double quotes keep everything but let a backslash
/// escape `$`, `` ` ``, `"`, `\` and newline; an unquoted backslash escapes any character.
/// Like `go-shellwords`, splitting stops at the first unquoted `;`, `&`, `|`, `<` or `>`: the
/// rest of the line is not part of the command, so `date && echo ok` runs `date` alone.
/// Variables and command substitutions are not expanded.
pub fn split_command_line(line: &str) -> Result<Vec<String>, String> {
    #[derive(PartialEq)]
    enum Quote {
        None,
        Single,
        Double,
    }
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut quote = Quote::None;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match quote {
            Quote::Single => {
                if c == '\'' {
                    quote = Quote::None;
                } else {
                    word.push(c);
                }
            }
            Quote::Double => match c {
                '"' => quote = Quote::None,
                '\\' => match chars.next() {
                    Some(escaped @ ('$' | '`' | '"' | '\\')) => word.push(escaped),
                    Some('\n') => {}
                    Some(other) => {
                        word.push('\\');
                        word.push(other);
                    }
                    None => return Err(unterminated(line)),
                },
                _ => word.push(c),
            },
            Quote::None => match c {
                '\'' => {
                    quote = Quote::Single;
                    in_word = true;
                }
                '"' => {
                    quote = Quote::Double;
                    in_word = true;
                }
                '\\' => match chars.next() {
                    Some('\n') => {}
                    Some(escaped) => {
                        word.push(escaped);
                        in_word = true;
                    }
                    None => return Err(unterminated(line)),
                },
                ';' | '&' | '|' | '<' | '>' => break,
                c if c.is_whitespace() => {
                    if in_word {
                        words.push(std::mem::take(&mut word));
                        in_word = false;
                    }
                }
                _ => {
                    word.push(c);
                    in_word = true;
                }
            },
        }
    }
    if quote != Quote::None {
        return Err(unterminated(line));
    }
    if in_word {
        words.push(word);
    }
    Ok(words)
}

fn unterminated(line: &str) -> String {
    format!("shell: invalid command line string {line:?}: unterminated quote or escape")
}
