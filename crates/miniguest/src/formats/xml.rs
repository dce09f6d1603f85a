//! XML, written only through quick-xml's writer, which escapes markup in
//! every attribute and text node. On top of that, values holding control
//! characters are refused: XML 1.0 cannot carry most of them at all, and
//! parsers fold the rest (tab, newline, carriage return) into other
//! characters, so the document would not read back as written.

use anyhow::{bail, Result};
use quick_xml::events::{BytesEnd, BytesStart, BytesText, Event};

pub struct XmlWriter {
    writer: quick_xml::Writer<Vec<u8>>,
    open: Vec<String>,
}

impl Default for XmlWriter {
    fn default() -> Self {
        Self::new()
    }
}

impl XmlWriter {
    pub fn new() -> Self {
        XmlWriter {
            writer: quick_xml::Writer::new_with_indent(Vec::new(), b' ', 2),
            open: Vec::new(),
        }
    }

    fn start<'a>(name: &'a str, attrs: &[(&'a str, &'a str)]) -> Result<BytesStart<'a>> {
        for (key, value) in attrs {
            checked(key, value)?;
        }
        Ok(BytesStart::new(name).with_attributes(attrs.iter().copied()))
    }

    /// `<name attrs…>`, closed by `close`.
    pub fn open(&mut self, name: &str, attrs: &[(&str, &str)]) -> Result<()> {
        let start = Self::start(name, attrs)?;
        self.writer.write_event(Event::Start(start))?;
        self.open.push(name.to_owned());
        Ok(())
    }

    pub fn close(&mut self) -> Result<()> {
        let Some(name) = self.open.pop() else {
            bail!("XML writer: close without open");
        };
        self.writer.write_event(Event::End(BytesEnd::new(name)))?;
        Ok(())
    }

    /// `<name attrs…/>`
    pub fn empty(&mut self, name: &str, attrs: &[(&str, &str)]) -> Result<()> {
        let start = Self::start(name, attrs)?;
        self.writer.write_event(Event::Empty(start))?;
        Ok(())
    }

    /// `<name attrs…>text</name>`
    pub fn text(&mut self, name: &str, attrs: &[(&str, &str)], text: &str) -> Result<()> {
        checked(name, text)?;
        let start = Self::start(name, attrs)?;
        self.writer.write_event(Event::Start(start))?;
        self.writer.write_event(Event::Text(BytesText::new(text)))?;
        self.writer.write_event(Event::End(BytesEnd::new(name)))?;
        Ok(())
    }

    pub fn finish(self) -> Result<String> {
        if let Some(name) = self.open.last() {
            bail!("XML writer: <{name}> left open");
        }
        let mut text = String::from_utf8(self.writer.into_inner())?;
        text.push('\n');
        Ok(text)
    }
}

fn checked(what: &str, value: &str) -> Result<()> {
    if let Some(c) = value
        .chars()
        .find(|c| c.is_control() || matches!(c, '\u{FFFE}' | '\u{FFFF}'))
    {
        bail!("{what}: {value:?} holds {c:?}, which XML cannot carry");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markup_is_escaped_and_control_characters_refused() {
        let mut x = XmlWriter::new();
        x.open("a", &[("k", "'\"<&>")]).unwrap();
        x.text("b", &[], "</b><evil/>").unwrap();
        x.close().unwrap();
        let text = x.finish().unwrap();
        assert!(!text.contains("<evil/>"), "{text}");
        let mut x = XmlWriter::new();
        assert!(x.text("b", &[], "a\nb").is_err());
        assert!(x.empty("c", &[("k", "\u{1}")]).is_err());
    }
}
