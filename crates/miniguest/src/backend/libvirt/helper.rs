//! Runs the `miniguest-libvirt` helper: a separate program so that only
//! commands that talk to libvirt pay for loading it and its ~50 shared
//! libraries.

use std::io::Write;
use std::process::{Command, Stdio};

use anyhow::{anyhow, Context, Result};

use super::protocol::{Answer, Request};
use crate::backend::host::helper_program;

/// Asks the helper (beside this program, else in PATH), with `stdin`
/// piped in when given. Its errors come back as one line in its own words.
pub fn call(request: &Request, stdin: Option<&[u8]>) -> Result<Answer> {
    let program = helper_program("miniguest-libvirt").context(
        "miniguest-libvirt is not installed (built without libvirt support?); run the printed virt-install command instead",
    )?;
    let mut child = Command::new(&program)
        .args(request.to_args())
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("cannot run {}", program.display()))?;
    if let Some(bytes) = stdin {
        child
            .stdin
            .take()
            .context("no stdin for miniguest-libvirt")?
            .write_all(bytes)?;
    }
    let out = child.wait_with_output()?;
    if !out.status.success() {
        let said = String::from_utf8_lossy(&out.stderr);
        let said = said.trim().trim_start_matches("error: ");
        return Err(if said.is_empty() {
            anyhow!("miniguest-libvirt failed ({})", out.status)
        } else {
            anyhow!("{}", said.replace('\n', "; "))
        });
    }
    Answer::parse(request, &String::from_utf8_lossy(&out.stdout))
        .map_err(|e| anyhow!("miniguest-libvirt: {e}"))
}
