"""``concierge serve`` as the benchmarks configure it, and a data directory of one's own."""

from pathlib import Path

from bench.lib.concierge import env_value, link_shared_artifacts, shown_concierge_command


def test_settings_are_spelled_as_concierge_variables() -> None:
    assert (env_value(True), env_value(2.5), env_value(Path("/d"))) == ("true", "2.5", "/d")
    shown = shown_concierge_command({"max_model_len": 2048, "enforce_eager": False})
    assert shown == "CONCIERGE_MAX_MODEL_LEN=2048 CONCIERGE_ENFORCE_EAGER=False concierge serve"


def test_a_data_directory_borrows_the_model_and_classifiers(tmp_path: Path) -> None:
    shared = tmp_path / "var"
    for name in ("models", "classifiers", "indexes"):
        (shared / name).mkdir(parents=True)
    own = tmp_path / "own"
    own.mkdir()
    link_shared_artifacts(own, shared)
    link_shared_artifacts(own, shared)  # again: nothing to do
    assert sorted(p.name for p in own.iterdir()) == ["classifiers", "models"]
    assert (own / "models").resolve() == (shared / "models").resolve()


def test_only_folders_the_shared_directory_has_are_linked(tmp_path: Path) -> None:
    shared = tmp_path / "var"
    (shared / "models").mkdir(parents=True)  # no local classifier set: the shipped heads serve
    own = tmp_path / "own"
    own.mkdir()
    link_shared_artifacts(own, shared)
    link_shared_artifacts(own, shared)
    assert sorted(p.name for p in own.iterdir()) == ["models"]


def test_a_link_that_leads_nowhere_is_replaced_or_removed(tmp_path: Path) -> None:
    shared = tmp_path / "var"
    (shared / "models").mkdir(parents=True)
    own = tmp_path / "own"
    own.mkdir()
    for name in ("models", "classifiers"):
        (own / name).symlink_to(tmp_path / "gone" / name, target_is_directory=True)
    link_shared_artifacts(own, shared)
    assert sorted(p.name for p in own.iterdir()) == ["models"]
    assert (own / "models").resolve() == (shared / "models").resolve()


def test_a_folder_of_its_own_is_kept(tmp_path: Path) -> None:
    shared = tmp_path / "var"
    for name in ("models", "classifiers"):
        (shared / name).mkdir(parents=True)
    own = tmp_path / "own"
    (own / "classifiers").mkdir(parents=True)
    link_shared_artifacts(own, shared)
    assert not (own / "classifiers").is_symlink()
    assert (own / "models").is_symlink()
