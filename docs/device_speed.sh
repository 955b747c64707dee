#!/bin/bash
# docs/device_speed.sh -- one <10-min call on the lent GPU: training throughput with the on-the-fly data,
# compile: true ("new") against compile: autotune ("tuned"), printed from one run with their ratio
# (bench/bench_train.py), then the model step alone under both modes (bench/bench_compile.py) if time is left.
# Carry [".whl"] (and runs/inductor.tgz when a previous call brought one back: it saves the 219-s autotuning).
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1 TORCHINDUCTOR_CACHE_DIR=$PWD/runs/inductor
T0=$(date +%s); left() { echo $((T0 + 570 - $(date +%s))); }
mkdir -p $TORCHINDUCTOR_CACHE_DIR; [ -f runs/inductor.tgz ] && tar xzf runs/inductor.tgz -C $TORCHINDUCTOR_CACHE_DIR
nvidia-smi --query-gpu=name,memory.total --format=csv
timeout $(left) python bench/bench_train.py --device cuda --batch-size 1024 --compile --bf16 --steps 30 --warmup 5 \
  --variants new tuned --out $OUT/train_h200.json 2>&1 | grep -v "AUTOTUNE\|triton_\|strides\|dtypes\|Autotune\|num_choices" | tail -12
[ $(left) -gt 60 ] && timeout $(left) python bench/bench_compile.py --modes default autotune --timeout 200 \
  --out $OUT/compile_h200.json 2>&1 | grep -v "AUTOTUNE\|triton_\|strides\|dtypes\|Autotune\|num_choices" | tail -6
tar czf $OUT/inductor.tgz -C $TORCHINDUCTOR_CACHE_DIR . && [ $(stat -c %s $OUT/inductor.tgz) -lt 8000000 ] \
  || { echo "inductor cache $(du -sh $TORCHINDUCTOR_CACHE_DIR | cut -f1) (gzip $(stat -c %s $OUT/inductor.tgz 2>/dev/null) B), over 8 MB: not kept"; rm -f $OUT/inductor.tgz; }
ls -la $OUT
