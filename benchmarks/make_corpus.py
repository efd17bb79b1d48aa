"""Generate a benchmark corpus: a few thousand realistic files, made from the bundled fixtures
(training scripts and model files, renamed and varied) plus plain non-torch modules and tests.

The mix is deliberately heavy in training code: 45 % of the files are fixtures (42 % are
training scripts, about 80 % of the parse time), where a real repository such as
stable-baselines3 or DETR has 4 %. Nearly every line of a training script is one a rule must
see, so this corpus is the hard case for the ratio to a bare parse.

    python benchmarks/make_corpus.py OUT_DIR [--files 3000] [--seed 0]
"""

from __future__ import annotations

import argparse
import random
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

PLAIN = '''"""Utilities: config parsing, logging and small helpers (no torch)."""

import argparse
import json
import logging
import os
from dataclasses import dataclass, field

LOGGER = logging.getLogger(__name__)


@dataclass
class RunConfig{n}:
    name: str = "run{n}"
    seed: int = {n}
    tags: list = field(default_factory=list)

    def to_json(self) -> str:
        return json.dumps(self.__dict__)


def parse_args{n}(argv=None):
    parser = argparse.ArgumentParser()
    parser.add_argument("--seed", type=int, default={n})
    parser.add_argument("--out", default=os.getcwd())
    return parser.parse_args(argv)


def moving_average{n}(values, window=10):
    out, total = [], 0.0
    for i, value in enumerate(values):
        total += value
        if i >= window:
            total -= values[i - window]
        out.append(total / min(i + 1, window))
    return out


class Timer{n}:
    def __enter__(self):
        import time
        self.start = time.perf_counter()
        return self

    def __exit__(self, *exc):
        import time
        LOGGER.info("took %.3f s", time.perf_counter() - self.start)
'''

TEST = '''import pytest

from utils{n} import moving_average{n}


@pytest.mark.parametrize("window", [1, 2, 5])
def test_moving_average_{n}(window):
    values = list(range(20))
    assert len(moving_average{n}(values, window)) == 20
'''


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("out")
    parser.add_argument("--files", type=int, default=3000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    torch_files = sorted((ROOT / "fixtures").rglob("*.py"))
    for index in range(args.files):
        kind = rng.random()
        package = out / f"project{index % 40}"
        package.mkdir(exist_ok=True)
        if kind < 0.45:  # training scripts and model files
            template = rng.choice(torch_files).read_text()
            text = re.sub(r"\b(hidden|hidden_dim|hidden_size)=(\d+)", lambda m: f"{m.group(1)}={int(m.group(2)) + index % 7}", template)
            text = text.replace("def main(", f"def main_{index}(").replace("main()", f"main_{index}()")
            (package / f"train_{index}.py").write_text(text)
        elif kind < 0.8:
            (package / f"utils{index}.py").write_text(PLAIN.format(n=index))
        else:
            (package / f"test_utils{index}.py").write_text(TEST.format(n=index))
    print(f"wrote {args.files} files under {out}")


if __name__ == "__main__":
    main()
