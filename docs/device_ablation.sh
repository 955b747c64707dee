#!/bin/bash
# docs/device_ablation.sh MIN [curriculum|width|dilate] -- an ablation of docs/training.md, one <10-min call on the lent GPU:
# two runs from scratch on the same GPU at once, identical but for one choice, each for MIN minutes; their
# metrics.csv come back in $OUT. Needs .whl/ as docs/device_chunk.sh.
#   curriculum (default): h100.yaml's SNR curriculum 20-40 -> 8-24 over 15 epochs vs the paper's 8-24 from
#                         the first step (Schaefer et al. 2021);
#   width               : ResNet width 8 vs 16, both without a curriculum (compare them at equal epochs:
#                         the wider one makes fewer steps in the same minutes);
#   dilate              : the paper's ResNet (0.41-s receptive field) vs model.dilate=1 (dilated last blocks that
#                         see the whole 4-s window, same parameters), both without a curriculum: does BNS gain?
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1
[ -f runs/h200/real.npz ] || python3 docs/make_real_npz.py runs/h200/real.npz || exit 1
common="epochs=300 bank_per_class=2048 val_samples=8192 p_real=0.2 real_data=runs/h200/real.npz checkpoint_minutes=100 workers=8"
flat="curriculum=[{until_epoch: 300, snr_low: 8, snr_high: 24}]"
if [ "${2:-curriculum}" = width ]; then
  A=w8; a_args=("$flat" model.width=8); B=w16; b_args=("$flat" model.width=16)
elif [ "$2" = dilate ]; then
  A=paper; a_args=("$flat" model.dilate=0); B=dilated; b_args=("$flat" model.dilate=1)
else
  A=cur; a_args=("curriculum=[{until_epoch: 5, snr_low: 20, snr_high: 40}, {until_epoch: 10, snr_low: 14, snr_high: 30}, {until_epoch: 15, snr_low: 10, snr_high: 26}, {until_epoch: 300, snr_low: 8, snr_high: 24}]")
  B=flat; b_args=("$flat")
fi
python train.py --config configs/h100.yaml --out runs/$A --max-minutes $1 --device cuda $common "${a_args[@]}" > $OUT/$A.log 2>&1 &
python train.py --config configs/h100.yaml --out runs/$B --max-minutes $1 --device cuda $common "${b_args[@]}" > $OUT/$B.log 2>&1 &
wait
for a in $A $B; do cp runs/$a/metrics.csv $OUT/$a-metrics.csv; tr '\r' '\n' < $OUT/$a.log | grep -v 'it/s' | tail -5; done
