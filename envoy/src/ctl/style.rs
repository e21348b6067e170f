//! Human output: colour only when stdout is a terminal (and `NO_COLOR` is unset), aligned
//! tables.

use std::io::IsTerminal;

/// Whether to colour, decided once per run.
#[derive(Debug, Clone, Copy)]
pub struct Style {
    colour: bool,
}

impl Style {
    pub fn detect() -> Self {
        Self {
            colour: std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none(),
        }
    }

    pub fn plain() -> Self {
        Self { colour: false }
    }

    fn paint(&self, code: &str, text: &str) -> String {
        if self.colour {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_string()
        }
    }

    pub fn good(&self, text: &str) -> String {
        self.paint("32", text)
    }

    pub fn bad(&self, text: &str) -> String {
        self.paint("31;1", text)
    }

    pub fn warn(&self, text: &str) -> String {
        self.paint("33", text)
    }

    pub fn bold(&self, text: &str) -> String {
        self.paint("1", text)
    }

    /// `PASS` / `FAIL`, coloured.
    pub fn verdict(&self, passed: bool) -> String {
        if passed {
            self.good("PASS")
        } else {
            self.bad("FAIL")
        }
    }
}

/// A table rendered as Markdown (readable in a terminal, pasteable into a README). Cells may
/// hold colour codes: widths count visible characters.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let columns = header.len();
    let mut widths: Vec<usize> = header.iter().map(|h| visible_len(h)).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate().take(columns) {
            if let Some(width) = widths.get_mut(i) {
                *width = (*width).max(visible_len(cell));
            }
        }
    }
    let line = |cells: Vec<String>| {
        let padded: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(cell, width)| {
                let pad = width.saturating_sub(visible_len(cell));
                format!("{cell}{}", " ".repeat(pad))
            })
            .collect();
        format!("| {} |\n", padded.join(" | "))
    };
    let mut out = line(header.iter().map(|h| h.to_string()).collect());
    out.push_str(&line(widths.iter().map(|w| "-".repeat(*w)).collect()));
    for row in rows {
        let mut cells = row.clone();
        cells.resize(columns, String::new());
        out.push_str(&line(cells));
    }
    out
}

/// Characters shown, without ANSI colour sequences.
fn visible_len(text: &str) -> usize {
    let mut count = 0;
    let mut in_escape = false;
    for c in text.chars() {
        match (in_escape, c) {
            (false, '\x1b') => in_escape = true,
            (true, 'm') => in_escape = false,
            (true, _) => {}
            (false, _) => count += 1,
        }
    }
    count
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_align_on_visible_width() {
        let style = Style { colour: true };
        let rows = vec![
            vec!["leads".to_string(), style.verdict(true)],
            vec!["coaching".to_string(), "x".to_string()],
        ];
        let text = table(&["service", "check"], &rows);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "| service  | check |");
        assert_eq!(lines[1], "| -------- | ----- |");
        assert_eq!(lines[2], "| leads    | \x1b[32mPASS\x1b[0m  |");
        assert_eq!(lines[3], "| coaching | x     |");
        assert_eq!(Style::plain().verdict(false), "FAIL");
    }
}
