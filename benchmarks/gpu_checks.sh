#!/usr/bin/env bash
# Every GPU figure the docs still wait for, in one run on a machine with one NVIDIA GPU.
#
#   bash benchmarks/gpu_checks.sh [OUT_DIR]          # default OUT_DIR: $OUT, else gpu_results/
#
# Each step runs under its own time limit (STEP_LIMIT seconds, default 120) and writes its table to
# OUT_DIR/<step>.txt and every number to OUT_DIR/<step>.json; a step that fails or times out is
# named in OUT_DIR/summary.txt and the next one still runs. The whole script is sized to finish in
# about 9 minutes on an H100. It needs a Python with torch (CUDA), numpy, h5py and PyYAML
# (PYTHON, default python3) and imports gns from this checkout (no install); nothing is downloaded.
#
#   throughput     the default GNS model (10 x 128): rollout step (graph + forward) at 2,500
#                  particles (LagrangeBench: 5.3 ms on an A6000; goal under 2 ms), training step,
#                  particle-steps/s at 10k and 100k particles, peak memory
#   step_options   bf16 autocast and torch.compile side by side with the plain step, checked equal
#   neighbors      gns.neighbors.radius_graph at 100k and 1M particles, 2-D and 3-D
#   mesh           the MeshGraphNets simulator's throughput, cloth and flow, 1x and 10x nodes
#   objects        the object simulator at 8 and 64 objects, batched futures
#   cuda_tests     the tests that run on CUDA when it is there (neighbours, world edges, distributed)
set -u
cd "$(dirname "$0")/.."
OUT_DIR=${1:-${OUT:-gpu_results}}
PYTHON=${PYTHON:-python3}
LIMIT=${STEP_LIMIT:-120}
mkdir -p "$OUT_DIR"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
SUMMARY="$OUT_DIR/summary.txt"
{
  date -u
  nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv 2>&1
  "$PYTHON" -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, torch.cuda.get_device_name(0))" 2>&1
} > "$SUMMARY"

step() {  # step NAME COMMAND...: run with the time limit, log its status
  local name=$1 start=$SECONDS rc
  shift
  timeout "$LIMIT" "$@" > "$OUT_DIR/$name.txt" 2>&1
  rc=$?
  echo "$name: exit $rc after $((SECONDS - start)) s" | tee -a "$SUMMARY"
}

step throughput "$PYTHON" benchmarks/throughput.py --device cuda --particles 2500 10000 100000 \
  --variants ours concat --no-profile --json "$OUT_DIR/throughput.json"
step step_options "$PYTHON" benchmarks/step_options.py --device cuda --parts variants --particles 2500 10000 \
  --variants plain bf16 compile --json "$OUT_DIR/step_options.json"
step neighbors "$PYTHON" benchmarks/neighbors.py --device cuda --sizes 100000,1000000 --dims 2,3 \
  --json "$OUT_DIR/neighbors.json"
step mesh "$PYTHON" benchmarks/mesh_throughput.py --device cuda --json "$OUT_DIR/mesh.json"
if [ -f benchmarks/objects_throughput.py ]; then
  step objects "$PYTHON" benchmarks/objects_throughput.py --device cuda --json "$OUT_DIR/objects.json"
fi
step cuda_tests "$PYTHON" -m pytest -q -p no:cacheprovider -k cuda tests/test_neighbors.py tests/mesh/test_world_edges.py \
  tests/mesh/test_topology.py tests/train/test_distributed.py
cat "$SUMMARY"
