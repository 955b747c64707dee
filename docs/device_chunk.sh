#!/bin/bash
# docs/device_chunk.sh TRAIN_MIN EVAL [overrides...] -- one <10-min call on the lent GPU ($OUT: the folder that comes back).
# CKPT (environment; default models/dilated-ckpt.pt, the run in progress) is the checkpoint resumed, in runs/<its name>;
# the new one comes back as $OUT/ckpt.pt: copy it over CKPT. (The paper-ResNet run ended at step 27,900:
# CKPT=models/h100-ckpt.pt after `git show 604f122:models/h100-ckpt.pt > models/h100-ckpt.pt`.)
# EVAL: 0 none, 1 RUN/best (else gpu/best-prev), 2 shipped + best, 3 gpu/last, 4 shipped, 5 the checkpoint's weights
# (CKPT, or the one this call trained when TRAIN_MIN > 0) calibrated and evaluated for every detector subset. Needs .whl/ (lalsuite cp312 wheel) and
# makes runs/h200/real.npz from the bundled GW190521 files unless it is carried; see docs/training.md.
# Inductor's cache (compiled and autotuned kernels: 219 s of compile with compile=autotune on a fresh machine,
# 7 s from the cache) comes back as $OUT/inductor.tgz; copy it to runs/inductor.tgz and carry it next time.
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1
MIN=$1; EVAL=$2; shift 2; T0=$(date +%s); left() { echo $((T0 + 575 - $(date +%s))); }
CKPT=${CKPT:-models/dilated-ckpt.pt}; RUN=runs/$(basename $CKPT -ckpt.pt)
R=$OUT/res; mkdir -p $RUN $R
export TORCHINDUCTOR_CACHE_DIR=$PWD/runs/inductor; mkdir -p $TORCHINDUCTOR_CACHE_DIR
[ -f runs/inductor.tgz ] && tar xzf runs/inductor.tgz -C $TORCHINDUCTOR_CACHE_DIR
[ -f runs/h200/real.npz ] || python3 docs/make_real_npz.py runs/h200/real.npz || exit 1  # h5py only: no gwpy here
cp $CKPT $RUN/ckpt.pt
nvidia-smi --query-gpu=name,memory.total --format=csv
if [ "$MIN" != "0" ]; then
  python train.py --resume --out $RUN --max-minutes $MIN --device cuda checkpoint_minutes=2 "$@" 2>&1 \
    | tr '\r' '\n' | grep -v 'it/s' | tee $R/train.log | tail -40
  cp $RUN/ckpt.pt $OUT/ckpt.pt
  cp $RUN/metrics.csv $RUN/best.safetensors $RUN/last.safetensors $R/ 2>/dev/null
fi
if [ "$EVAL" != "0" ]; then
  [ -f $RUN/best.safetensors ] || cp gpu/best-prev.safetensors $RUN/best.safetensors
  W="$RUN/best.safetensors"; [ "$EVAL" = 3 ] && W="gpu/last.safetensors"; [ "$EVAL" = 4 ] && W="models/gwviz-resnet54.safetensors"; [ "$EVAL" = 2 ] && W="models/gwviz-resnet54.safetensors $W"
  SUB="H1L1V1"; [ "$EVAL" = 5 ] && W="$RUN/ckpt.pt" && SUB="H1L1V1 H1L1 H1V1 L1V1 H1 L1 V1"
  for w in $W; do
    n=$(basename $(basename $w .safetensors) .pt)
    timeout $(left) python -m gwviz.evaluation.calibration $w --out $R/cal_$n --n 100000 --real-data runs/h200/real.npz --n-real 20000 \
      --device cuda --no-figures --subsets $SUB 2>&1 | tr '\r' '\n' | grep -v 'it/s' | grep -v '^ ' | tail -15
    c=$(ls $R/cal_$n/*-calibrated.safetensors)
    for noise in simulated files; do
      extra=""; [ $noise = files ] && extra="--real-npz runs/h200/real.npz"
      timeout $(left) python -m gwviz.evaluation.evaluate --weights $c --noise $noise $extra --n 20000 --batch 1024 --n-roc 2000 \
        --n-roc-noise 20000 --seed 7 --device cuda --bank runs/evalbank.pt --bank-per-class 1000 \
        --no-figures --no-progress --out $R/eval_${n}_$noise 2>&1 | tail -12
      # per-sample outputs travel as their own file (each <= 16 MiB comes back; res.tgz with both did not, 2026-12-03)
      o=$R/eval_${n}_$noise/outputs.npz; [ -f $o ] && mv $o $OUT/outputs_${n}_$noise.npz
    done
    for sub in $SUB; do
      [ $sub = H1L1V1 ] && continue
      timeout $(left) python -m gwviz.evaluation.evaluate --weights $c --noise simulated --subset $sub --n 20000 --batch 1024 --n-roc 2000 \
        --n-roc-noise 20000 --seed 7 --device cuda --bank runs/evalbank.pt --bank-per-class 1000 \
        --no-figures --no-progress --out $R/eval_${n}_$sub 2>&1 | tail -2
      rm -f $R/eval_${n}_$sub/outputs.npz
    done
    rm -f $R/cal_$n/*-calibrated.safetensors.tmp
  done
fi
tar czf $OUT/inductor.tgz -C $TORCHINDUCTOR_CACHE_DIR . && [ $(stat -c %s $OUT/inductor.tgz) -lt 8000000 ] \
  || { echo "inductor cache $(du -sh $TORCHINDUCTOR_CACHE_DIR | cut -f1) (gzip $(stat -c %s $OUT/inductor.tgz 2>/dev/null) B), over 8 MB: not kept (the tree, the wheel and it must fit one 64-MiB carry)"; rm -f $OUT/inductor.tgz; }
cd $OUT && tar czf res.tgz res && rm -rf res
# a file over 16 MiB does not come back: split it (cat res.tgz.* | tar xz)
for f in *; do [ $(stat -c %s $f) -gt 16000000 ] && split -b 15000000 $f $f. && rm $f; done
ls -la $OUT
