"""Mapping files: CSV and YAML read into rules, and every mistake named with its place."""

from __future__ import annotations

from pathlib import Path

import pytest

from syncd.mapping import Component, MappingError, load_mapping


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_csv_maps_renames_kits_and_channel_overrides(tmp_path: Path) -> None:
    """CSV rows rename a SKU, override it on one channel, and several rows for one SKU make a kit."""
    path = write(
        tmp_path,
        "skus.csv",
        "channel,channel_sku,erp_sku,quantity\n"
        ",MUG-RED,MUG-1,\n"
        "tiktok,MUG-RED,MUG-2,1\n"
        "*,GIFT,MUG-1,2\n"
        "*,GIFT,TEA-1,1\n"
        "\n",
    )
    sku_map = load_mapping(path)
    assert sku_map.resolve("shop", "MUG-RED") == (Component("MUG-1"),)
    assert sku_map.resolve("tiktok", "MUG-RED") == (Component("MUG-2"),)
    assert sku_map.resolve("shop", "GIFT") == (Component("MUG-1", 2), Component("TEA-1"))
    assert sku_map.is_kit("shop", "GIFT") and not sku_map.is_kit("shop", "MUG-RED")
    assert sku_map.conflicts == []


def test_yaml_maps_and_kits(tmp_path: Path) -> None:
    """YAML has a map list and a kits list; a map and a kit for one SKU are a conflict."""
    path = write(
        tmp_path,
        "skus.yaml",
        "map:\n"
        "  - {channel_sku: MUG-RED, erp_sku: MUG-1}\n"
        "  - {channel_sku: SET, erp_sku: MUG-1}\n"
        "kits:\n"
        "  - channel_sku: GIFT\n"
        "    channel: shop\n"
        "    components: {MUG-1: 2, TEA-1: 1}\n"
        "  - {channel_sku: SET, components: {MUG-1: 1, TEA-1: 1}}\n",
    )
    sku_map = load_mapping(path)
    assert sku_map.resolve("shop", "GIFT") == (Component("MUG-1", 2), Component("TEA-1"))
    assert sku_map.resolve("tiktok", "GIFT") == (Component("GIFT"),)
    assert sku_map.resolve("shop", "SET") is None
    assert [str(c) for c in sku_map.conflicts] == [
        f"SET on every channel is mapped differently in {path}: map[1], {path}: kits[1]"
    ]


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("m.csv", "sku,erp\nA,B\n", "the header needs the column(s) channel_sku, erp_sku"),
        ("m.csv", "channel_sku,erp_sku,qty\nA,B,1\n", "unknown column(s) qty"),
        (
            "m.csv",
            "channel_sku,erp_sku,quantity\nA,B,0\n",
            "line 2: quantity must be a whole number of at least 1, not '0'",
        ),
        ("m.csv", "channel_sku,erp_sku,quantity\nA,B,two\n", "line 2: quantity must be a whole number"),
        ("m.csv", "channel_sku,erp_sku\nA,\n", "line 2: both channel_sku and erp_sku are needed"),
        (
            "m.csv",
            "channel_sku,erp_sku,quantity\nK,B,1\nK,B,2\n",
            "K lists ERP SKU B 2 times (line 2, line 3)",
        ),
        ("m.yaml", "maps: []\n", "the top level has the keys map and kits only"),
        ("m.yaml", "map:\n  - {channel_sku: A}\n", "map[0].erp_sku: missing"),
        ("m.yaml", "map:\n  - {channel_sku: A, erp: B}\n", "map[0]: unknown key(s) erp"),
        (
            "m.yaml",
            "kits:\n  - {channel_sku: K, components: [A]}\n",
            "kits[0].components: must map each ERP SKU",
        ),
        (
            "m.yaml",
            "kits:\n  - {channel_sku: K, components: {A: -1}}\n",
            "kits[0].components.A: quantity must be",
        ),
        ("m.yaml", "map: [\n", "not valid YAML"),
        ("m.json", "{}", "a mapping file ends in .csv, .yaml or .yml"),
    ],
)
def test_bad_files_are_named_with_the_place_and_reason(
    tmp_path: Path, name: str, text: str, message: str
) -> None:
    """A mistake in the mapping file is an error naming the file, the row or key and what is wrong."""
    path = write(tmp_path, name, text)
    with pytest.raises(MappingError) as caught:
        load_mapping(path)
    assert message in str(caught.value)
    assert str(path) in str(caught.value)


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    """All the bad rows of a file are listed together, not one per attempt."""
    path = write(tmp_path, "m.csv", "channel_sku,erp_sku,quantity\nA,,1\nB,C,x\n")
    with pytest.raises(MappingError) as caught:
        load_mapping(path)
    assert len(caught.value.problems) == 2


def test_a_missing_file_is_named(tmp_path: Path) -> None:
    """A mapping path that does not exist gives an error naming it."""
    with pytest.raises(MappingError, match="no such mapping file"):
        load_mapping(tmp_path / "absent.csv")
