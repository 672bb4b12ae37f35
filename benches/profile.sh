#!/usr/bin/env bash
# Instructions per operation of one client on one Redis operation, counted by callgrind: the
# same from run to run, where times on this 2-core VM drift by tens of percent. The figure is
# (instructions at HI operations - instructions at LO operations) / (HI - LO), so setup cancels.
#
#   benches/profile.sh get 100b cache-core 64            # OP SIZE CLIENT TASKS [LO HI]
#   benches/profile.sh get 100b raw-multiplexed 64
#   benches/profile.sh batch 1kib get_many 1 100 500
#
# Leaves the callgrind files in target/profile/ for callgrind_annotate. Needs valgrind.
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -ge 4 ] || { sed -n '2,10p' "$0"; exit 2; }
OP=$1 SIZE=$2 CLIENT=$3 TASKS=$4 LO=${5:-5000} HI=${6:-25000}
command -v valgrind >/dev/null || { echo "install valgrind (apt-get install valgrind)" >&2; exit 1; }
TARGET=${CARGO_TARGET_DIR:-target}
cargo build --release --locked -q -p cache-benches --bin profile
mkdir -p "$TARGET/profile"
count() {
    timeout 600 valgrind --tool=callgrind \
        --callgrind-out-file="$TARGET/profile/$OP.$SIZE.$CLIENT.$TASKS.$1" \
        "$TARGET/release/profile" "$OP" "$SIZE" "$CLIENT" "$TASKS" "$1" 2>&1 \
        | sed -n 's/.*Collected : //p'
}
lo=$(count "$LO")
hi=$(count "$HI")
echo "$OP $SIZE $CLIENT, $TASKS tasks: $(((hi - lo) / (HI - LO))) instructions per operation"
