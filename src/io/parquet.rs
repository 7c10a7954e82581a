//! Interactions as Parquet (`interactions_parquet: true`): one file per round, `part-NNNNNN.parquet`
//! (round, six digits), in a folder named after the interactions CSV (`interaction.csv` →
//! `interaction.parquet/`), beside the CSV, which is still written (it is what checkpoints
//! hash and resume truncate).
//!
//! One file per round because a Parquet file is readable only once its footer is written: a
//! file per round is whole as soon as its round is, a crash loses at most the round in
//! progress, and a resumed run removes the parts of rounds after its checkpoint. The folder is
//! a dataset pandas (`pd.read_parquet(dir)`, pyarrow) and polars
//! (`pl.read_parquet(dir + "/*.parquet")`) read in one call.
//!
//! Schema (the CSV's columns, same names): `user_id` INT64, `item_id` INT64, `label` INT32
//! (1 = watched, 0 = shown), `rating` INT32 nullable (null when not rated), `round` INT32,
//! `timestamp` STRING (`YYYY-mm-dd HH:MM:SS`, the round's simulated time). Snappy-compressed
//! (pyarrow's default codec); rows in the CSV's order.

use std::path::{Path, PathBuf};

use super::output::InteractionRecord;

/// The Parquet folder beside the interactions CSV `interactions`: its name with the extension
/// `.parquet` (`out/interaction.csv` → `out/interaction.parquet`).
pub fn parts_dir(interactions: &Path) -> PathBuf {
    interactions.with_extension("parquet")
}

/// The file of round `round` in `dir`.
pub fn part_path(dir: &Path, round: u32) -> PathBuf {
    dir.join(format!("part-{round:06}.parquet"))
}

/// The parts in `dir` with their rounds, ascending (none when `dir` does not exist); other
/// files are ignored.
pub fn parts(dir: &Path) -> Vec<(u32, PathBuf)> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out: Vec<(u32, PathBuf)> = entries
        .filter_map(Result::ok)
        .filter_map(|e| {
            let name = e.file_name();
            let round = name
                .to_str()?
                .strip_prefix("part-")?
                .strip_suffix(".parquet")?
                .parse()
                .ok()?;
            Some((round, e.path()))
        })
        .collect();
    out.sort();
    out
}

/// Removes the parts of rounds after `round` (a resumed run's, written after its checkpoint).
///
/// # Errors
/// The first file that could not be removed.
pub fn remove_parts_after(dir: &Path, round: u32) -> std::io::Result<()> {
    for (r, p) in parts(dir) {
        if r > round {
            std::fs::remove_file(&p)?;
        }
    }
    Ok(())
}

/// True when this build writes Parquet (the `parquet` cargo feature, on by default).
pub const AVAILABLE: bool = cfg!(feature = "parquet");

/// Writes round `round`'s interactions (simulated time `time`) to [`part_path`] in `dir`,
/// creating `dir`: to a temporary file first, renamed into place, so a part is whole or absent.
/// A round without interactions writes a file with no rows (so every round has its part).
///
/// # Errors
/// An I/O or encoding error; in a build without the `parquet` feature, always.
pub fn write_part(
    dir: &Path,
    round: u32,
    time: &str,
    rows: &[InteractionRecord],
) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let path = part_path(dir, round);
    // A leading dot: readers of the folder (pyarrow's dataset discovery, a `*.parquet` glob)
    // skip the file being written.
    let tmp = dir.join(format!(".part-{round:06}.parquet.tmp"));
    encode(&tmp, round, time, rows)?;
    std::fs::rename(&tmp, &path)
}

#[cfg(feature = "parquet")]
fn encode(path: &Path, round: u32, time: &str, rows: &[InteractionRecord]) -> std::io::Result<()> {
    use std::sync::Arc;

    use parquet::basic::Compression;
    use parquet::data_type::{ByteArray, ByteArrayType, Int32Type, Int64Type};
    use parquet::file::properties::WriterProperties;
    use parquet::file::writer::SerializedFileWriter;
    use parquet::schema::parser::parse_message_type;

    const SCHEMA: &str = "message interaction {
        REQUIRED INT64 user_id;
        REQUIRED INT64 item_id;
        REQUIRED INT32 label;
        OPTIONAL INT32 rating;
        REQUIRED INT32 round;
        REQUIRED BYTE_ARRAY timestamp (STRING);
    }";
    let err = std::io::Error::other;
    let schema = Arc::new(parse_message_type(SCHEMA).map_err(err)?);
    let props = Arc::new(
        WriterProperties::builder()
            .set_compression(Compression::SNAPPY)
            .set_created_by(format!("recagent {}", env!("CARGO_PKG_VERSION")))
            .build(),
    );
    let file = std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(path)?);
    let mut writer = SerializedFileWriter::new(file, schema, props).map_err(err)?;
    let mut group = writer.next_row_group().map_err(err)?;
    let users: Vec<i64> = rows.iter().map(|r| i64::from(r.user)).collect();
    let items: Vec<i64> = rows.iter().map(|r| i64::from(r.item)).collect();
    let labels: Vec<i32> = rows.iter().map(|r| i32::from(r.label)).collect();
    let ratings: Vec<i32> = rows
        .iter()
        .filter(|r| r.rating > 0)
        .map(|r| i32::from(r.rating))
        .collect();
    let rated: Vec<i16> = rows.iter().map(|r| i16::from(r.rating > 0)).collect();
    let rounds = vec![round as i32; rows.len()];
    let times = vec![ByteArray::from(time); rows.len()];
    let mut column = 0;
    while let Some(mut col) = group.next_column().map_err(err)? {
        match column {
            0 => col.typed::<Int64Type>().write_batch(&users, None, None),
            1 => col.typed::<Int64Type>().write_batch(&items, None, None),
            2 => col.typed::<Int32Type>().write_batch(&labels, None, None),
            3 => col
                .typed::<Int32Type>()
                .write_batch(&ratings, Some(&rated), None),
            4 => col.typed::<Int32Type>().write_batch(&rounds, None, None),
            _ => col.typed::<ByteArrayType>().write_batch(&times, None, None),
        }
        .map_err(err)?;
        col.close().map_err(err)?;
        column += 1;
    }
    group.close().map_err(err)?;
    let mut file = writer.into_inner().map_err(err)?;
    std::io::Write::flush(&mut file)?;
    file.get_ref().sync_all()
}

#[cfg(not(feature = "parquet"))]
fn encode(_: &Path, _: u32, _: &str, _: &[InteractionRecord]) -> std::io::Result<()> {
    Err(std::io::Error::other(
        "this recagent was built without the `parquet` feature",
    ))
}

/// Reads a part back as `(user, item, label, rating (0 = null), round, timestamp)` rows: for
/// tests and for checking a file.
///
/// # Errors
/// A file that is not such a part.
#[cfg(feature = "parquet")]
pub fn read_part(path: &Path) -> Result<Vec<(u32, u32, u8, u8, u32, String)>, String> {
    use parquet::file::reader::{FileReader, SerializedFileReader};
    use parquet::record::Field;

    let file = std::fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let reader = SerializedFileReader::new(file).map_err(|e| format!("{}: {e}", path.display()))?;
    let rows = reader
        .get_row_iter(None)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    let mut out = Vec::new();
    for row in rows {
        let row = row.map_err(|e| format!("{}: {e}", path.display()))?;
        let mut vals = row.get_column_iter().map(|(_, f)| f.clone());
        let int = |f: Option<Field>| -> Result<i64, String> {
            match f {
                Some(Field::Long(v)) => Ok(v),
                Some(Field::Int(v)) => Ok(i64::from(v)),
                Some(Field::Null) => Ok(0),
                other => Err(format!("{}: unexpected value {other:?}", path.display())),
            }
        };
        let (u, i, l, r, rd) = (
            int(vals.next())?,
            int(vals.next())?,
            int(vals.next())?,
            int(vals.next())?,
            int(vals.next())?,
        );
        let t = match vals.next() {
            Some(Field::Str(s)) => s,
            other => {
                return Err(format!(
                    "{}: unexpected timestamp {other:?}",
                    path.display()
                ))
            }
        };
        out.push((u as u32, i as u32, l as u8, r as u8, rd as u32, t));
    }
    Ok(out)
}
