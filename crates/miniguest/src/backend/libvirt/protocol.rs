//! What `miniguest` asks the `miniguest-libvirt` helper, and what it
//! answers: typed on both sides, written and read here only. A request is
//! the helper's arguments (the domain XML, for `define`, on its standard
//! input); an answer is its standard output; an error is one line on its
//! standard error and a non-zero exit.

use std::fmt;
use std::str::FromStr;

use crate::backend::exec::ExecOutcome;
use crate::backend::{Change, State};

/// What the helper is asked to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// The domain's UUID, if it exists.
    Uuid { uri: String, name: String },
    /// Define (or redefine in place) the domain whose XML follows.
    Define {
        uri: String,
        name: String,
        autostart: bool,
    },
    /// The state of each domain, in order.
    States { uri: String, names: Vec<String> },
    /// Whether the network is active.
    HasNetwork { uri: String, name: String },
    /// Run the command whose `ExecRequest` (JSON) follows in the guest,
    /// through libvirt's channel to its QEMU guest agent, giving up after
    /// `deadline_ms`.
    Exec {
        uri: String,
        name: String,
        deadline_ms: Option<u64>,
    },
    /// Start, shut down, destroy or undefine the domain.
    Act {
        action: Action,
        uri: String,
        name: String,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Start,
    Shutdown,
    Destroy,
    Undefine,
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Action::Start => "start",
            Action::Shutdown => "shutdown",
            Action::Destroy => "destroy",
            Action::Undefine => "undefine",
        })
    }
}

impl FromStr for Action {
    type Err = String;

    fn from_str(word: &str) -> Result<Self, String> {
        match word {
            "start" => Ok(Action::Start),
            "shutdown" => Ok(Action::Shutdown),
            "destroy" => Ok(Action::Destroy),
            "undefine" => Ok(Action::Undefine),
            other => Err(format!("unknown action {other:?}")),
        }
    }
}

const USAGE: &str = "usage: miniguest-libvirt uuid|has-network URI NAME | define URI NAME [--autostart] < XML | states URI NAME… | exec URI NAME MS|none < REQUEST | start|shutdown|destroy|undefine URI NAME";

impl Request {
    /// The helper's arguments.
    pub fn to_args(&self) -> Vec<String> {
        let mut args: Vec<String> = match self {
            Request::Uuid { uri, name } => vec!["uuid".into(), uri.clone(), name.clone()],
            Request::Define {
                uri,
                name,
                autostart,
            } => {
                let mut a = vec!["define".into(), uri.clone(), name.clone()];
                if *autostart {
                    a.push("--autostart".into());
                }
                a
            }
            Request::States { uri, names } => {
                let mut a = vec!["states".into(), uri.clone()];
                a.extend(names.iter().cloned());
                a
            }
            Request::HasNetwork { uri, name } => {
                vec!["has-network".into(), uri.clone(), name.clone()]
            }
            Request::Exec {
                uri,
                name,
                deadline_ms,
            } => vec![
                "exec".into(),
                uri.clone(),
                name.clone(),
                deadline_ms.map_or("none".into(), |ms| ms.to_string()),
            ],
            Request::Act { action, uri, name } => {
                vec![action.to_string(), uri.clone(), name.clone()]
            }
        };
        args.shrink_to_fit();
        args
    }

    /// Reads the helper's arguments back.
    pub fn from_args(args: &[String]) -> Result<Request, String> {
        let words: Vec<&str> = args.iter().map(String::as_str).collect();
        let owned = |s: &str| s.to_owned();
        Ok(match words.as_slice() {
            ["uuid", uri, name] => Request::Uuid {
                uri: owned(uri),
                name: owned(name),
            },
            ["define", uri, name, rest @ ..] => Request::Define {
                uri: owned(uri),
                name: owned(name),
                autostart: match rest {
                    [] => false,
                    ["--autostart"] => true,
                    _ => return Err(USAGE.into()),
                },
            },
            ["states", uri, names @ ..] => Request::States {
                uri: owned(uri),
                names: names.iter().map(|n| owned(n)).collect(),
            },
            ["exec", uri, name, deadline] => Request::Exec {
                uri: owned(uri),
                name: owned(name),
                deadline_ms: match *deadline {
                    "none" => None,
                    ms => Some(ms.parse().map_err(|_| USAGE.to_owned())?),
                },
            },
            ["has-network", uri, name] => Request::HasNetwork {
                uri: owned(uri),
                name: owned(name),
            },
            [action, uri, name] => Request::Act {
                action: action.parse().map_err(|_| USAGE.to_owned())?,
                uri: owned(uri),
                name: owned(name),
            },
            _ => return Err(USAGE.into()),
        })
    }
}

/// What the helper answers, by request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    Uuid(Option<String>),
    Defined(Change),
    States(Vec<State>),
    Network(bool),
    Exec(ExecOutcome),
    Done,
}

impl fmt::Display for Answer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Answer::Uuid(Some(uuid)) => writeln!(f, "{uuid}"),
            Answer::Uuid(None) | Answer::Done => Ok(()),
            Answer::Defined(change) => writeln!(f, "{}", change.as_str()),
            Answer::States(states) => states
                .iter()
                .try_for_each(|s| writeln!(f, "{}", s.as_str())),
            Answer::Network(active) => writeln!(f, "{}", if *active { "yes" } else { "no" }),
            Answer::Exec(outcome) => writeln!(
                f,
                "{}",
                serde_json::to_string(outcome).map_err(|_| fmt::Error)?
            ),
        }
    }
}

impl Answer {
    /// Reads the answer to `request` from the helper's output.
    pub fn parse(request: &Request, out: &str) -> Result<Answer, String> {
        let out = out.trim();
        Ok(match request {
            Request::Uuid { .. } => Answer::Uuid((!out.is_empty()).then(|| out.to_owned())),
            Request::Define { .. } => Answer::Defined(out.parse()?),
            Request::States { names, .. } => {
                let states = out
                    .lines()
                    .map(str::parse)
                    .collect::<Result<Vec<State>, String>>()?;
                if states.len() != names.len() {
                    return Err(format!(
                        "{} states for {} domains",
                        states.len(),
                        names.len()
                    ));
                }
                Answer::States(states)
            }
            Request::HasNetwork { .. } => match out {
                "yes" => Answer::Network(true),
                "no" => Answer::Network(false),
                other => return Err(format!("unexpected answer {other:?}")),
            },
            Request::Exec { .. } => {
                Answer::Exec(serde_json::from_str(out).map_err(|e| e.to_string())?)
            }
            Request::Act { .. } => Answer::Done,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_and_answers_read_back_as_written() {
        let requests = [
            Request::Uuid {
                uri: "qemu:///system".into(),
                name: "web".into(),
            },
            Request::Define {
                uri: "u".into(),
                name: "web".into(),
                autostart: true,
            },
            Request::States {
                uri: "u".into(),
                names: vec!["a".into(), "b".into()],
            },
            Request::HasNetwork {
                uri: "u".into(),
                name: "default".into(),
            },
            Request::Exec {
                uri: "u".into(),
                name: "web".into(),
                deadline_ms: Some(1500),
            },
            Request::Act {
                action: Action::Destroy,
                uri: "u".into(),
                name: "web".into(),
            },
        ];
        for r in requests {
            assert_eq!(Request::from_args(&r.to_args()).unwrap(), r);
        }
        let states = Request::States {
            uri: "u".into(),
            names: vec!["a".into(), "b".into()],
        };
        let answer = Answer::States(vec![State::Running, State::Undefined]);
        assert_eq!(Answer::parse(&states, &answer.to_string()).unwrap(), answer);
        assert!(Answer::parse(&states, "running\n").is_err());
        let exec = Request::Exec {
            uri: "u".into(),
            name: "web".into(),
            deadline_ms: None,
        };
        let answer = Answer::Exec(ExecOutcome {
            status: 7,
            stdout: b"out\n".to_vec(),
            stderr: vec![0xff, 0],
        });
        assert_eq!(Answer::parse(&exec, &answer.to_string()).unwrap(), answer);
        assert!(Request::from_args(&["bogus".into()]).is_err());
    }
}
