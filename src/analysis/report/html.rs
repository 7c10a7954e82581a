//! The HTML of the reports: one self-contained file (inline CSS, inline `<svg>` plots, no
//! script, no external URL, no web font), so it opens from disk anywhere and can be mailed.

use std::fmt::Write as _;

/// `s` with `& < > " '` escaped for HTML text and attribute values.
pub(crate) fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

const STYLE: &str = "\
body{font-family:'DejaVu Sans',Verdana,Arial,sans-serif;margin:24px auto;max-width:1120px;\
color:#222;padding:0 16px;line-height:1.4}\
h1{font-size:24px;margin-bottom:4px}h2{font-size:19px;margin:32px 0 6px;border-bottom:1px solid #ddd;\
padding-bottom:4px}p.sub{color:#555;margin-top:0}\
table{border-collapse:collapse;margin:8px 0;font-size:14px}\
th,td{border:1px solid #ddd;padding:3px 8px;text-align:right}\
th:first-child,td:first-child{text-align:left}thead th{background:#f3f3f3}\
td.t,th.t{text-align:left}\
figure{margin:8px 0}figure svg{max-width:100%;height:auto;display:block}\
figcaption{color:#444;font-size:14px;margin-top:4px}\
dl.cfg{display:grid;grid-template-columns:max-content auto;gap:2px 14px;font-size:14px}\
dl.cfg dt{color:#555}dl.cfg dd{margin:0}\
.note{color:#666;font-size:13px}";

/// A whole HTML document: `title` in `<title>` and `<h1>`, `subtitle` under it, then `body`
/// (already HTML).
pub(crate) fn page(title: &str, subtitle: &str, body: &str) -> String {
    let mut out = String::new();
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>{t}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n<h1>{t}</h1>\n\
         <p class=\"sub\">{s}</p>\n{body}</body>\n</html>\n",
        t = escape(title),
        s = escape(subtitle),
    );
    out
}

/// A `<section>` with an id, a heading, one figure (an inline `<svg>`) and its caption.
pub(crate) fn figure_section(id: &str, heading: &str, svg: &str, caption_html: &str) -> String {
    format!(
        "<section id=\"{id}\">\n<h2>{h}</h2>\n<figure>\n{svg}\n<figcaption>{caption_html}</figcaption>\n</figure>\n</section>\n",
        h = escape(heading),
    )
}

/// An HTML table: `header` cells, then `rows`; cells are text (escaped here). The first
/// column is left-aligned, the others right-aligned (numbers); `text_cols` are left-aligned.
pub(crate) fn table(header: &[&str], rows: &[Vec<String>], text_cols: &[usize]) -> String {
    let mut out = String::from("<table>\n<thead><tr>");
    for (i, h) in header.iter().enumerate() {
        if text_cols.contains(&i) && i > 0 {
            let _ = write!(out, "<th class=\"t\">{}</th>", escape(h));
        } else {
            let _ = write!(out, "<th>{}</th>", escape(h));
        }
    }
    out.push_str("</tr></thead>\n<tbody>\n");
    for r in rows {
        out.push_str("<tr>");
        for (i, c) in r.iter().enumerate() {
            if text_cols.contains(&i) && i > 0 {
                let _ = write!(out, "<td class=\"t\">{}</td>", escape(c));
            } else {
                let _ = write!(out, "<td>{}</td>", escape(c));
            }
        }
        out.push_str("</tr>\n");
    }
    out.push_str("</tbody>\n</table>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup() {
        assert_eq!(
            escape("Beauty & <the> \"Beast\""),
            "Beauty &amp; &lt;the&gt; &quot;Beast&quot;"
        );
        let t = table(&["a", "b"], &[vec!["x<".into(), "1".into()]], &[]);
        assert!(t.contains("<td>x&lt;</td><td>1</td>"), "{t}");
    }
}
