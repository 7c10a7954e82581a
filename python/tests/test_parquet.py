"""The columnar interaction output (`interactions_parquet: true`, one Parquet file per round):
pandas (through pyarrow) and polars read the folder directly, and its rows are the CSV's."""

import subprocess

import pandas as pd
import polars as pl


def test_pandas_and_polars_read_the_parquet_interactions_as_the_csv(tmp_path, recagent_bin):
    subprocess.run(
        [str(recagent_bin), "run", "--seed", "5", "--rounds", "3", "--agents", "20",
         "--set", "interactions_parquet=true", "--output-dir", "out", "--quiet"],
        cwd=tmp_path, check=True,
    )
    out = tmp_path / "out"
    csv = pd.read_csv(out / "interaction.csv")
    assert len(csv) > 0
    parts = sorted(p.name for p in (out / "interaction.parquet").iterdir())
    assert parts == ["part-000001.parquet", "part-000002.parquet", "part-000003.parquet"]

    # pandas reads the folder as one table, in part order (rounds ascending).
    pq = pd.read_parquet(out / "interaction.parquet")
    assert list(pq.columns) == ["user_id", "item_id", "label", "rating", "round", "timestamp"]
    assert len(pq) == len(csv)
    for col in ["user_id", "item_id", "label", "round"]:
        assert pq[col].astype("int64").tolist() == csv[col].tolist(), col
    assert pq["timestamp"].tolist() == csv["timestamp"].tolist()
    # Unrated rows (shown, not watched) are empty in the CSV and null in Parquet.
    assert pq["rating"].isna().tolist() == csv["rating"].isna().tolist()
    assert csv["rating"].isna().any() and csv["rating"].notna().any()
    rated = csv["rating"].notna()
    assert pq["rating"][rated].astype("int64").tolist() == csv["rating"][rated].astype("int64").tolist()
    assert set(pq["rating"].dropna().astype("int64")) <= {1, 2, 3, 4, 5}

    # polars: the same rows, with integer columns (the rating a nullable integer).
    pl_df = pl.read_parquet(str(out / "interaction.parquet" / "*.parquet"))
    assert pl_df.shape == (len(csv), 6)
    assert pl_df.schema["rating"] == pl.Int32
    assert pl_df["rating"].null_count() == int(csv["rating"].isna().sum())
    assert pl_df["user_id"].to_list() == csv["user_id"].tolist()
    assert pl_df["item_id"].to_list() == csv["item_id"].tolist()
    assert pl_df["round"].to_list() == csv["round"].tolist()
