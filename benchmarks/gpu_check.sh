#!/usr/bin/env bash
# One-shot check of `gradlint verify --device cuda` and the gradient monitor on a CUDA machine:
# GPU and torch info; whether CUDA starts under the address-space limit the CPU worker uses;
# `gradlint verify fixtures/models` on cuda and on cpu, with their verdicts compared; the CUDA
# tests, the verify and monitor tests; the monitor on a small CUDA training loop.
#
#   bash benchmarks/gpu_check.sh        # from the repository root; results under $OUT
#
# Where libcst is missing there, bring its wheel in .whl/: python3 -m pip download --no-deps
# --only-binary=:all: --python-version 3.12 --implementation cp --platform manylinux_2_28_x86_64
# -d .whl 'libcst>=1.1,<2' (it needs pyyaml besides). About 3-5 minutes.
set -u
OUT=${OUT:-$PWD/gpu_check_out}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1
if python3 -c 'import libcst' 2>/dev/null; then
  export PYTHONPATH=$PWD
else
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
  export PYTHONPATH=/tmp/site:$PWD
fi
exec > >(tee "$OUT/log.txt") 2>&1
start=$(date +%s)
stamp() { echo "=== [$(( $(date +%s) - start )) s] $*"; }

stamp "device"
nvidia-smi -L || true
python3 - <<'EOF'
import torch
print("torch", torch.__version__, "cuda", torch.version.cuda, "available", torch.cuda.is_available(),
      "devices", torch.cuda.device_count())
if torch.cuda.is_available():
    print("device 0:", torch.cuda.get_device_name(0), f"{torch.cuda.get_device_properties(0).total_memory / 2**30:.1f} GiB")
EOF

stamp "CUDA under the CPU worker's address-space limit (RLIMIT_AS 8 GiB), as before the fix"
timeout 120 python3 - <<'EOF' 2>&1 | tail -2
import resource
resource.setrlimit(resource.RLIMIT_AS, (8 << 30, 8 << 30))
import torch
try:
    torch.zeros(1, device="cuda").sum().item()
    print("RLIMIT_AS: CUDA initialised anyway")
except Exception as exc:
    print("RLIMIT_AS: CUDA failed:", type(exc).__name__, str(exc).splitlines()[0][:200])
EOF

# in the background: the CPU run of verify, then the (CPU-heavy) verify and monitor tests
(
  t0=$(date +%s)
  timeout 240 python3 -m gradlint verify fixtures/models --device cpu --format json -o "$OUT/verify_cpu.json" \
      > "$OUT/background.txt" 2>&1
  echo "verify --device cpu exit $? after $(( $(date +%s) - t0 )) s" >> "$OUT/background.txt"
  timeout 300 python3 -m pytest -q -p no:cacheprovider tests/test_verify.py tests/test_monitor.py >> "$OUT/background.txt" 2>&1
  echo "pytest verify+monitor exit $?" >> "$OUT/background.txt"
) &
background=$!

stamp "gradlint verify fixtures/models --device cuda"
t0=$(date +%s)
timeout 240 python3 -m gradlint verify fixtures/models --device cuda --format json -o "$OUT/verify_cuda.json"
echo "verify --device cuda exit $? after $(( $(date +%s) - t0 )) s"

stamp "CUDA unavailable: one line"
CUDA_VISIBLE_DEVICES="" timeout 120 python3 -m gradlint verify fixtures/models/deep_plain_relu.py --device cuda
echo "exit $?"

stamp "tests/test_verify_device.py (the CUDA tests included)"
timeout 300 python3 -m pytest -q -rs -p no:cacheprovider tests/test_verify_device.py
echo "pytest test_verify_device exit $?"

stamp "monitor on a CUDA training loop"
timeout 120 python3 - "$OUT/monitor.jsonl" <<'EOF'
import sys, time, warnings
import torch
from gradlint.monitor import GradMonitor

torch.manual_seed(0)
device = "cuda"
model = torch.nn.Sequential(torch.nn.Linear(16, 256), torch.nn.ReLU(), torch.nn.Linear(256, 256), torch.nn.ReLU(),
                            torch.nn.Linear(256, 1)).to(device)
optimizer = torch.optim.SGD(model.parameters(), lr=1e-2)
monitor = GradMonitor(model, name="cuda-mlp", log_path=sys.argv[1], on_event=lambda e: print("event:", e.message()))
x, y = torch.randn(512, 16, device=device), torch.randn(512, 1, device=device)
for step in range(300):
    inputs = x * (300.0 if step == 200 else 1.0)  # one batch at a raw, unnormalised scale
    loss = torch.nn.functional.mse_loss(model(inputs), y)
    optimizer.zero_grad()
    loss.backward()
    total = torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    monitor.record(step, clipped_norm=total, loss=loss)
    optimizer.step()
monitor.close()
print("records", len(monitor.records), "events", [(e.kind, e.step) for e in monitor.events])
print("first/last global norm", monitor.records[0]["global_norm"], monitor.records[-1]["global_norm"])
bare = GradMonitor(model, name="timing")
torch.cuda.synchronize(); t = time.perf_counter()
for _ in range(200):
    bare.norms()
torch.cuda.synchronize()
print(f"norms(): {(time.perf_counter() - t) / 200 * 1e6:.0f} us per record on {torch.cuda.get_device_name(0)}")
EOF
echo "monitor exit $?"
timeout 120 python3 -m gradlint plot "$OUT/monitor.jsonl" --out "$OUT/monitor.png" || true

stamp "waiting for the CPU run and the verify/monitor tests"
wait $background
cat "$OUT/background.txt" | tail -15

stamp "verdicts: cuda vs cpu"
python3 - "$OUT/verify_cuda.json" "$OUT/verify_cpu.json" <<'EOF'
import json, sys

def load(path):
    try:
        data = json.load(open(path))
    except (OSError, ValueError) as exc:
        print("cannot read", path, exc)
        return {}, {}
    verdicts, figures = {}, {}
    for model in data:
        name = model["file"].split("fixtures/models/")[-1]
        for finding in model["findings"]:
            key = (name, model["model"], finding["code"])
            verdicts[key] = finding["verdict"]
            figures[key] = finding.get("figures", {})
        if model["error"]:
            print("  error:", name, model["model"], model["error"][:150])
    return verdicts, figures

(cuda, cuda_fig), (cpu, cpu_fig) = load(sys.argv[1]), load(sys.argv[2])
same = [k for k in cpu if cuda.get(k) == cpu[k]]
differ = [k for k in cpu.keys() | cuda.keys() if cuda.get(k) != cpu.get(k)]
print(f"findings: cpu {len(cpu)}, cuda {len(cuda)}; same verdict {len(same)}; different {len(differ)}")
for key in sorted(differ):
    print("  DIFFERENT", key, "cpu:", cpu.get(key), "cuda:", cuda.get(key))
gaps = []
for key in same:
    for name, a in cpu_fig.get(key, {}).items():
        b = cuda_fig[key].get(name)
        if isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool) and a:
            gaps.append((abs(b - a) / abs(a), key, name, a, b))
print("largest relative figure differences (cuda vs cpu):")
for gap in sorted(gaps, reverse=True)[:4]:
    print(f"  {gap[0]:.2e} {gap[1]} {gap[2]}: cpu {gap[3]:.6g} cuda {gap[4]:.6g}")
for key in sorted(cpu):
    print(f"  {key[0]:<36} {key[1]:<18} {key[2]}  cpu {cpu[key]:<14} cuda {cuda.get(key)}")
EOF
stamp "done"
