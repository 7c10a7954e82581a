//! The Markdown of the reports (GitHub-flavoured tables, images as relative links to PNG
//! files written beside the `.md`).

/// `s` with the characters that break a Markdown table cell (`|`, newlines) escaped.
pub(crate) fn cell(s: &str) -> String {
    s.replace('|', "\\|").replace(['\n', '\r'], " ")
}

/// A Markdown table: `header`, then `rows` (cells escaped here); the first column is
/// left-aligned, the others right-aligned.
pub(crate) fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut out = String::new();
    out.push('|');
    for h in header {
        out.push_str(&format!(" {} |", cell(h)));
    }
    out.push_str("\n|");
    for i in 0..header.len() {
        out.push_str(if i == 0 { " --- |" } else { " ---: |" });
    }
    out.push('\n');
    for r in rows {
        out.push('|');
        for c in r {
            out.push_str(&format!(" {} |", cell(c)));
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_escapes_pipes() {
        assert_eq!(
            table(&["item", "n"], &[vec!["A|B".into(), "2".into()]]),
            "| item | n |\n| --- | ---: |\n| A\\|B | 2 |\n"
        );
    }
}
