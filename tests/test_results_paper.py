"""The paper's tables as data: the schema is validated, and the numbers are the paper's."""

import pytest
import yaml

from sgbench.utils.errors import SgbenchError
from sgbench.results.paper import TABLES_FILE, load_paper_tables, paper_rows


def row(label, **where):
    matches = [r for r in paper_rows(**where) if r.label == label]
    assert len(matches) == 1, (label, where)
    return matches[0]


def test_the_file_holds_tables_1_to_5_and_validates():
    tables = load_paper_tables()
    assert [(t.number, len(t.rows)) for t in tables] == [(1, 4), (2, 6), (3, 9), (4, 14), (5, 12)]
    assert {t.benchmark for t in tables} == {"imagenet-256", "hpsv3", "geneval"}


def test_table2_numbers_are_the_papers():
    sg = row("+SG_FLOPS (Ours)", table=2)
    assert sg.metrics == {"fid": 2.14, "gflops": 97.67, "delta_gflops": -16.75}
    assert sg.method == "sg" and sg.guidance == {"gs": 0.5, "gw": 0.9} and sg.epochs == 400
    assert sg.backbone == "SiT-XL/2" and sg.sparsity == "routing" and sg.display_label == "paper T2: +SG_FLOPS (Ours)"
    assert row("SiT-XL/2 + routing", table=2).metrics == {"fid": 4.89, "gflops": 114.42, "delta_gflops": 0.0}
    assert row("+SG_FID (Ours)", table=2).metrics["fid"] == 1.58 and row("+CFG", table=2).metrics["gflops"] == 228.84


def test_tables_1_3_4_5_spot_checks():
    masking_sg = [r for r in paper_rows(table=1) if r.method == "sg" and r.sparsity == "masking"][0]
    assert masking_sg.metrics == {"fid": 5.73, "sfid": 11.99, "is": 249.0, "precision": 0.83, "recall": 0.42}
    assert row("SD-DiT-XL/2 [77]", table=3).metrics["sfid"] is None  # printed as "—"
    assert row("+ SG_FID (Ours)", table=3).metrics["recall"] == 0.63
    hps = row("TR-DiT-2.5B + SG (Ours)", benchmark="hpsv3")
    assert hps.metrics["overall"] == 9.87 and hps.guidance == {"scale": 1.8, "gs": 0.1, "gw": 0.8}
    assert row("Stable Diffusion 2 [66]", table=4).metrics["design"] == -1.35
    gen = row("TR-DiT-2.5B + SG", benchmark="geneval")
    assert gen.method == "cfg+sg" and gen.metrics["overall"] == 0.62 and gen.guidance == {"scale": 2.5, "gs": 0.2, "gw": 0.7}
    assert not row("DALL-E 3 [4]", table=5).ours


def test_benchmark_filter_and_unknown_requests():
    assert {r.table for r in paper_rows("imagenet-256")} == {1, 2, 3}
    with pytest.raises(SgbenchError, match="Expected a benchmark in imagenet-256, hpsv3, geneval"):
        paper_rows("cifar10")
    with pytest.raises(SgbenchError, match="no Table 9"):
        paper_rows(table=9)


def broken(tmp_path, edit):
    raw = yaml.safe_load(TABLES_FILE.read_text())
    edit(raw)
    path = tmp_path / "tables.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


@pytest.mark.parametrize(
    "edit,message",
    [
        (lambda r: r.update(schema=2), "expected schema 1 but got 2"),
        (lambda r: r["tables"][1]["rows"][0]["metrics"].pop("fid"), r"tables\[1\].rows\[0\]: metrics must give every column"),
        (lambda r: r["tables"][1]["rows"][0]["metrics"].update(fid="4.89"), "must be a number or null"),
        (lambda r: r["tables"][1]["rows"][0].update(method="cfgg"), "method 'cfgg' is not a guidance method"),
        (lambda r: r["tables"][1]["rows"][0].update(speed=1), r"unknown key\(s\) \['speed'\]"),
        (lambda r: r["tables"][0].update(benchmark="cifar"), "expected benchmark in"),
        (lambda r: r["tables"][0]["columns"][0].update(better="up"), "expected better: lower or higher"),
        (lambda r: r["tables"][1].update(number=1), "table numbers must be unique"),
        (lambda r: r["tables"][0]["rows"][0].update(sparsity="pruning"), "expected sparsity in routing"),
    ],
)
def test_schema_violations_are_one_clear_error(tmp_path, edit, message):
    with pytest.raises(SgbenchError, match=message):
        load_paper_tables(broken(tmp_path, edit))


def test_the_imagenet_bench_recipe_is_table2(tmp_path):
    """recipes/bench/imagenet-sit-xl2.yaml runs Table 2's rows; apart from the fields the bench does not
    read yet (vae, sampling.precision) it validates with today's bench loader."""
    from pathlib import Path

    from sgbench.workflows.bench import load_bench_recipe

    raw = yaml.safe_load((Path(__file__).parents[1] / "recipes" / "bench" / "imagenet-sit-xl2.yaml").read_text())
    assert raw.pop("vae") and raw["sampling"].pop("precision") == "bf16"
    (tmp_path / "r.yaml").write_text(yaml.safe_dump(raw))
    recipe = load_bench_recipe(tmp_path / "r.yaml")
    table2 = {r.method for r in paper_rows(table=2)}
    assert {c.guidance for c in recipe.configs} == table2 == {"unguided", "cfg", "ag", "icg", "sg", "ag+sg"}
    sg = next(c for c in recipe.configs if c.label == "SG_FLOPS")
    assert sg.params["gs"] == 0.5 and sg.params["gw"] == 0.9 and recipe.sampling.num == 50_000
