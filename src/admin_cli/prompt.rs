//! Reading passwords and confirmations: from the terminal (passwords without echo, via
//! `stty -echo` on /dev/tty), or one line from standard input when it is not a terminal.

use std::fs::File;
use std::io::{BufRead, IsTerminal, Write};
use std::process::{Command, Stdio};

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

/// Prompts on standard error and reads a line on a thread, so that Ctrl-C restores the echo and
/// ends the command instead of leaving the terminal silent.
async fn ask(prompt: &str, hidden: bool) -> Result<String, Failure> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    let prompt = prompt.to_string();
    std::thread::spawn(move || {
        let _ = tx.send(read_from_terminal(&prompt, hidden));
    });
    tokio::select! {
        answer = rx => answer.unwrap_or_else(|_| Err(Failure::Rejected("no answer".into()))),
        _ = tokio::signal::ctrl_c() => {
            if hidden {
                stty("echo");
            }
            eprintln!();
            Err(Failure::Rejected("interrupted".into()))
        }
    }
}

fn read_from_terminal(prompt: &str, hidden: bool) -> Result<String, Failure> {
    // Echo goes off before the prompt shows, so nothing typed after the prompt is echoed.
    let echo_off = hidden && stty("-echo");
    let mut stderr = std::io::stderr();
    let _ = write!(stderr, "{prompt}");
    let _ = stderr.flush();
    let line = read_stdin_line();
    if echo_off {
        stty("echo");
        let _ = writeln!(stderr);
    }
    line?.ok_or_else(|| Failure::Rejected("no answer (end of input)".into()))
}

/// Runs `stty ARG` on the controlling terminal; false when that is not possible.
fn stty(arg: &str) -> bool {
    let Ok(tty) = File::open("/dev/tty") else {
        return false;
    };
    Command::new("stty")
        .arg(arg)
        .stdin(tty)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
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
