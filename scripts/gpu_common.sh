# Sourced by the prepared GPU runs (scripts/gpu_demo_run.sh, scripts/gpu_bench_run.sh), from the
# repository root: the interhand CLI from src/ ($IH, with $PY, default python3), a log in
# $OUT/run.log (default gpu_out/), say() for time-stamped lines, and the machine written first.
export PYTHONPATH=src PYTHONUNBUFFERED=1
OUT=${OUT:-gpu_out}
PY=${PY:-python3}
IH="$PY -m interhand_perception.cli"
mkdir -p "$OUT"
LOG="$OUT/run.log"
say() { echo "[$(date +%T)] $*" | tee -a "$LOG"; }

say "machine"
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
  $PY -c "import torch, os; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'cpus', os.cpu_count())"
} 2>&1 | tee -a "$LOG"
