#!/usr/bin/env bash
# The GPU checks of issues 4, 5 and 21 as ONE call of the device tool (a lent H100/H200; ~7-9 minutes):
#
#   run(command="bash scripts/device_checks.sh", timeout_s=540)
#
# The GPU image has torch, transformers, peft, timm and pytest but not Django or the phantom's
# DICOM stack, so only the model library is imported (PYTHONPATH) and nothing is downloaded:
#   1. tests/gpu (bf16 autocast incl. the RoPE/SwiGLU ViT, an align step with both auxiliary losses, compiled
#      static decoding, the configured llava drafter on CUDA in bf16) and the timm conversion tests (timm imports
#      there with its own torchvision);
#   2. bench/encoder_throughput.py: ViT-B/16 + 4 registers, 224 px, batch 256, bf16: ours vs the SDPA
#      reference vs timm's ViT (the issue's reference point: ~9,900 slices/s on one H100);
#   3. bench/report_decode.py: Llama-3.1-8B-shaped model with random weights in bf16 (same bytes per
#      token as the real one), static cache + compiled step, batch 1 and 16, vs the bandwidth floor
#      (target >= 0.6 of the floor at batch 1).
#   4. issue 21: ViT-L/16 in bf16, ours with learnt positions and with RoPE vs timm's ViT-L and timm's DINOv3
#      ViT-L (Eva, RoPE) in the same run (encoder_vitl.json); the 8B-shaped decode through the llava drafter
#      (prompt, projector, splicing, static decoder) at batch 1 and 16 vs the floor (report_decode_drafter.json).
# Everything lands in $OUT (comes back to the session): gpu.txt, gpu-tests.log, encoder_throughput.json,
# report_decode.json, encoder_vitl.json, report_decode_drafter.json, summary.txt. Write the numbers into
# docs/benchmarks.md (and docs/weights.md) with the device named.
set -uo pipefail
OUT=${OUT:-/tmp/device-checks}
mkdir -p "$OUT"
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD/models:$PWD/annotation${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
PY=${PYTHON:-python3}

{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
  $PY -c "import torch, transformers, peft; print('torch', torch.__version__, 'cuda', torch.version.cuda,
'transformers', transformers.__version__, 'peft', peft.__version__)"; } 2>&1 | tee "$OUT/gpu.txt"

echo "== 1. CUDA tests"
# --noconftest/-c /dev/null: tests/conftest.py and pyproject's pytest settings need Django, absent there.
timeout 240 $PY -m pytest -q -rs -p no:cacheprovider --noconftest -c /dev/null --rootdir tests tests/gpu \
    tests/models/test_convert.py -k "gpu or cuda or timm or bf16" 2>&1 \
    | tee "$OUT/gpu-tests.log" | tail -n 15
tests_rc=${PIPESTATUS[0]}

echo "== 2. encoder throughput (bf16, ViT-B/16-reg4, 224 px, batch 256)"
timeout 150 $PY bench/encoder_throughput.py --size base --img-size 224 --batch 256 --dtype bf16 --iters 20 --timm \
    --json "$OUT/encoder_throughput.json" 2>&1 | tail -n 12 \
  || timeout 120 $PY bench/encoder_throughput.py --size base --img-size 224 --batch 256 --dtype bf16 --iters 20 \
    --json "$OUT/encoder_throughput.json" 2>&1 | tail -n 12

echo "== 3. report decoding (Llama-3.1-8B shape, random weights, bf16)"
timeout 240 $PY bench/report_decode.py --preset llama-3.1-8b --dtype bfloat16 --prompt 256 --new 128 --batches 1,16 \
    --json "$OUT/report_decode.json" 2>&1 | tail -n 14

echo "== 4. issue 21: ViT-L/16 RoPE vs timm ViT-L (bf16), 8B-shaped decode through the llava drafter"
timeout 150 $PY bench/encoder_throughput.py --size large --img-size 224 --batch 128 --dtype bf16 --iters 10 \
    --variants learnt,rope --timm --json "$OUT/encoder_vitl.json" 2>&1 | tail -n 16
timeout 240 $PY bench/report_decode.py --drafter --preset llama-3.1-8b --dtype bfloat16 --new 128 --batches 1,16 \
    --json "$OUT/report_decode_drafter.json" 2>&1 | tail -n 6

{ echo "tests exit code: $tests_rc"; grep -E "passed|failed|error" "$OUT/gpu-tests.log" | tail -n 1
  for f in encoder_throughput report_decode encoder_vitl report_decode_drafter; do echo "$f:"; cat "$OUT/$f.json" 2>/dev/null || echo "  (no result)"; done
} > "$OUT/summary.txt"
cat "$OUT/summary.txt"
exit "$tests_rc"
