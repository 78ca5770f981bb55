//! Reading passwords and confirmations: from the terminal (passwords without echo, through
//! `rpassword`), or one line from standard input when it is not a terminal.

use std::fs::File;
use std::io::{BufRead, ErrorKind, IsTerminal, Write};

use nix::sys::termios::{self, LocalFlags, SetArg, Termios};

use super::Failure;
use crate::domain::validate::{self, PasswordPolicy};

/// Whether a person can answer prompts.
pub(super) fn interactive() -> bool {
    std::io::stdin().is_terminal()
}

/// A new password: typed twice on a terminal, or one line of standard input; validated.
pub(super) async fn new_password(policy: PasswordPolicy) -> Result<String, Failure> {
    let password = if interactive() {
        let first = ask("New password: ", true).await?;
        let second = ask("Repeat the new password: ", true).await?;
        if first != second {
            return Err(Failure::BadInput("the two passwords do not match".into()));
        }
        first
    } else {
        read_stdin_line()?
            .ok_or_else(|| Failure::BadInput("no password on standard input".into()))?
    };
    validate::new_password(&password, policy)?;
    Ok(password)
}

/// Asks a yes/no question on the terminal; only `y` or `yes` is a yes.
pub(super) async fn confirm(question: &str) -> Result<bool, Failure> {
    let answer = ask(&format!("{question} [y/N] "), false).await?;
    Ok(matches!(
        answer.trim().to_ascii_lowercase().as_str(),
        "y" | "yes"
    ))
}

/// One line from standard input without its line ending; `None` at end of input.
fn read_stdin_line() -> Result<Option<String>, Failure> {
    let mut line = String::new();
    let read = std::io::stdin()
        .lock()
        .read_line(&mut line)
        .map_err(|e| Failure::BadInput(format!("cannot read standard input: {e}")))?;
    if read == 0 {
        return Ok(None);
    }
    Ok(Some(strip_line_ending(line)))
}

fn strip_line_ending(mut line: String) -> String {
    if line.ends_with('\n') {
        line.pop();
        if line.ends_with('\r') {
            line.pop();
        }
    }
    line
}

/// Prompts and reads the answer on a thread. A password is read by `rpassword` from the
/// terminal, which it keeps raw and silent meanwhile: it reads Ctrl-C as a key, restores the
/// terminal and raises SIGINT, which the handler installed here turns into "interrupted"
/// instead of the process's death. A plain answer is one line of standard input, and Ctrl-C
/// ends the command.
async fn ask(prompt: &str, hidden: bool) -> Result<String, Failure> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut interrupt = signal(SignalKind::interrupt())
        .map_err(|e| Failure::BadInput(format!("cannot handle Ctrl-C: {e}")))?;
    let (tx, rx) = tokio::sync::oneshot::channel();
    let prompt = prompt.to_string();
    std::thread::spawn(move || {
        let _ = tx.send(if hidden {
            read_password(&prompt)
        } else {
            read_answer(&prompt)
        });
    });
    let no_answer = |_| Err(Failure::Rejected("no answer".into()));
    if hidden {
        return rx.await.unwrap_or_else(no_answer);
    }
    tokio::select! {
        answer = rx => answer.unwrap_or_else(no_answer),
        _ = interrupt.recv() => {
            eprintln!();
            Err(Failure::Rejected("interrupted".into()))
        }
    }
}

fn read_password(prompt: &str) -> Result<String, Failure> {
    let _echo_off = EchoOff::on_the_terminal();
    rpassword::prompt_password(prompt).map_err(|e| match e.kind() {
        ErrorKind::Interrupted => Failure::Rejected("interrupted".into()),
        ErrorKind::UnexpectedEof => Failure::Rejected("no answer (end of input)".into()),
        _ => Failure::BadInput(format!("cannot read the password from the terminal: {e}")),
    })
}

/// The terminal without echo until dropped, then as it was. rpassword turns the echo off only
/// after printing the prompt; this turns it off before, so nothing typed ahead is echoed.
struct EchoOff(Option<(File, Termios)>);

impl EchoOff {
    fn on_the_terminal() -> Self {
        let Ok(tty) = File::open("/dev/tty") else {
            return Self(None);
        };
        let Ok(saved) = termios::tcgetattr(&tty) else {
            return Self(None);
        };
        let mut quiet = saved.clone();
        quiet.local_flags.remove(LocalFlags::ECHO);
        match termios::tcsetattr(&tty, SetArg::TCSANOW, &quiet) {
            Ok(()) => Self(Some((tty, saved))),
            Err(_) => Self(None),
        }
    }
}

impl Drop for EchoOff {
    fn drop(&mut self) {
        if let Some((tty, saved)) = &self.0 {
            let _ = termios::tcsetattr(tty, SetArg::TCSANOW, saved);
        }
    }
}

fn read_answer(prompt: &str) -> Result<String, Failure> {
    let mut stderr = std::io::stderr();
    let _ = write!(stderr, "{prompt}");
    let _ = stderr.flush();
    read_stdin_line()?.ok_or_else(|| Failure::Rejected("no answer (end of input)".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_endings_are_stripped_once() {
        assert_eq!(strip_line_ending("pw\n".into()), "pw");
        assert_eq!(strip_line_ending("pw\r\n".into()), "pw");
        assert_eq!(strip_line_ending("pw".into()), "pw");
        assert_eq!(strip_line_ending("pw \n".into()), "pw ");
        assert_eq!(strip_line_ending("\n".into()), "");
    }
}
