#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# The bash completions (completions/pmtopo, pmctl, pmbench) under
# bash-completion's own helpers, as an interactive shell loads them.
#
#   tests/completion_test.sh SOURCE_ROOT PMTOPO PMCTL PMBENCH PAGEMAPD
#
# Each file registers its tool (complete -p); `pmctl `, `pmbench ` and
# `pmbench topo --` offer the commands and options the built tools' --help
# lists (so a command or option added without its completion fails here);
# `pmtopo --` likewise, --filter completes the last kind of a list, --pair the
# devices of the --load'ed machine. `pmctl revoke ` offers the devices of
# `pmctl pools` when the broker answers it, and nothing, silently, when no
# broker does. Exit 77 (skip) without bash-completion.
set -uo pipefail
SRC=${1:-} PMTOPO=${2:-} PMCTL=${3:-} PMBENCH=${4:-} PAGEMAPD=${5:-}
BC=/usr/share/bash-completion/bash_completion
if [[ ! -f $BC ]]; then
	echo "SKIP: $BC missing (apt-get install bash-completion)"
	exit 77
fi
for b in "$PMTOPO" "$PMCTL" "$PMBENCH" "$PAGEMAPD"; do
	if [[ -z $b || ! -x $b ]]; then
		echo "usage: $0 SOURCE_ROOT PMTOPO PMCTL PMBENCH PAGEMAPD ('$b' is not executable)" >&2
		exit 2
	fi
done
TMP=$(mktemp -d)
BROKER_PID=
cleanup() {
	if [[ -n $BROKER_PID ]]; then
		kill "$BROKER_PID" 2>/dev/null
		wait "$BROKER_PID" 2>/dev/null
	fi
	rm -rf "$TMP"
}
trap cleanup EXIT
FAILS=0 CHECKS=0
ok() { CHECKS=$((CHECKS + 1)); echo "ok   $*"; }
bad() { CHECKS=$((CHECKS + 1)); FAILS=$((FAILS + 1)); echo "FAIL $*" >&2; }

# complete_words TOOL WORDS...: what TAB offers after WORDS (the last one is the word
# being completed, "" for a new one), one per line, from a fresh shell that
# loaded bash-completion and the tool's file the way a user's does.
complete_words() {
	local tool=$1
	shift
	bash --norc --noprofile -c '
		source "$1" || exit 3
		source "$2" || exit 3
		fn=$(complete -p "$3" | sed -n "s/.*-F \([^ ]*\) .*/\1/p")
		[[ -n $fn ]] || exit 4
		shift 3
		COMP_WORDS=("$@")
		COMP_CWORD=$((${#COMP_WORDS[@]} - 1))
		COMP_LINE="${COMP_WORDS[*]}"
		COMP_POINT=${#COMP_LINE}
		"$fn" "$1" "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD - 1]}"
		((${#COMPREPLY[@]} == 0)) || printf "%s\n" "${COMPREPLY[@]}"' \
		completion "$BC" "$SRC/completions/$tool" "$tool" "$@"
}

# expect_all NAME WANTED... -- GOT...: every WANTED is among GOT
expect_all() {
	local name=$1 w missing=
	shift
	local -a want=()
	while [[ $1 != -- ]]; do want+=("$1"); shift; done
	shift
	local got
	got=$(printf '%s\n' "$@")
	for w in "${want[@]}"; do
		grep -qxF -- "$w" <<<"$got" || missing+=" $w"
	done
	if [[ -n $missing ]]; then
		bad "$name: not offered:$missing (offered: $*)"
	else
		ok "$name (${#want[@]} of ${#@} offered)"
	fi
}

# The built tools answer by name, as on a user's PATH.
mkdir "$TMP/bin"
for b in "$PMTOPO" "$PMCTL" "$PMBENCH"; do ln -s "$(realpath "$b")" "$TMP/bin/"; done
export PATH=$TMP/bin:$PATH

for tool in pmtopo pmctl pmbench; do
	if bash --norc --noprofile -c 'source "$1" && source "$2" && complete -p "$3"' \
		completion "$BC" "$SRC/completions/$tool" "$tool" >"$TMP/reg" 2>&1 &&
		grep -q -- "-F _$tool $tool\$" "$TMP/reg"; then
		ok "$tool registered: $(cat "$TMP/reg")"
	else
		bad "$tool not registered: $(cat "$TMP/reg")"
	fi
done

# The long options a --help lists: those opening a line (after "-h, "), in the
# usage's [brackets] or alternatives, or after "; " in a shared line. Not the
# options of other programs its prose mentions (lstopo --of xml).
help_opts() {
	"$@" --help 2>&1 | grep -oE -- '(^ *(-[a-zA-Z], )?|\[|\| |;  )--[a-z][a-z-]+' |
		grep -oE -- '--[a-z][a-z-]+$' | sort -u
}

mapfile -t got < <(complete_words pmtopo pmtopo --)
mapfile -t want < <(help_opts pmtopo)
expect_all "pmtopo -- lists pmtopo --help's options" "${want[@]}" -- "${got[@]}"
mapfile -t got < <(complete_words pmtopo pmtopo --filter gpu,n)
expect_all "pmtopo --filter gpu,n" gpu,nic gpu,nvme gpu,numa -- "${got[@]}"
Q=$SRC/examples/topologies/qemu-pcie.json
mapfile -t got < <(complete_words pmtopo pmtopo --load "$Q" --pair "")
expect_all "pmtopo --load qemu --pair" MEM0 MEM1 NIC0 node0 0000:03:00.0 eth0 -- "${got[@]}"
mapfile -t got < <(complete_words pmtopo pmtopo --load "$Q" --pair MEM0 M)
expect_all "pmtopo --load qemu --pair MEM0 M" MEM0 MEM1 -- "${got[@]}"
mapfile -t got < <(complete_words pmtopo pmtopo --export "")
expect_all "pmtopo --export" nccl-xml -- "${got[@]}"

# pmctl: the commands of its help's "Commands:" list, and its options.
mapfile -t want < <("$PMCTL" --help | sed -n '/^Commands:/,/^$/s/^  \([a-z][a-z-]*\).*/\1/p')
mapfile -t got < <(complete_words pmctl pmctl "")
expect_all "pmctl lists pmctl --help's commands" "${want[@]}" pools restore -- "${got[@]}"
mapfile -t want < <(help_opts pmctl)
mapfile -t got < <(complete_words pmctl pmctl --)
expect_all "pmctl -- lists pmctl --help's options" "${want[@]}" -- "${got[@]}"
mapfile -t got < <(complete_words pmctl pmctl revoke --)
expect_all "pmctl revoke --" --force -- "${got[@]}"

# pmbench: the commands of its help, then each one's options.
mapfile -t want < <("$PMBENCH" --help | sed -n 's/^  \([a-z][a-z]*\)  .*/\1/p')
mapfile -t got < <(complete_words pmbench pmbench "")
expect_all "pmbench lists pmbench --help's commands" "${want[@]}" topo rtt -- "${got[@]}"
for sub in "${want[@]}"; do
	mapfile -t opts < <(help_opts pmbench "$sub")
	mapfile -t got < <(complete_words pmbench pmbench "$sub" --)
	expect_all "pmbench $sub -- lists its --help's options" "${opts[@]}" -- "${got[@]}"
done
mapfile -t got < <(complete_words pmbench pmbench rtt --pin "")
expect_all "pmbench rtt --pin" none same split -- "${got[@]}"

# Devices for pmctl revoke and restore: the first column of pmctl pools'
# table, its header skipped; first from a stand-in pmctl printing such a table.
mkdir "$TMP/stub"
cat >"$TMP/stub/pmctl" <<'STUB'
#!/bin/sh
for a; do
	[ "$a" = pools ] || continue
	printf 'DEVICE         REGION   KIND\n0000:03:00.0   mem      emulated\n'
	printf '0000:03:00.0   bar2     pci-bar\nnode0          -        host-numa\n'
	exit 0
done
exit 2
STUB
chmod +x "$TMP/stub/pmctl"
mapfile -t got < <(complete_words pmctl "$TMP/stub/pmctl" restore "")
expect_all "pmctl restore: devices of a pools table" 0000:03:00.0 node0 -- "${got[@]}"
if ((${#got[@]} == 2)); then
	ok "pmctl restore: no header, each device once"
else
	bad "pmctl restore: offered ${got[*]}, not 0000:03:00.0 node0"
fi
mapfile -t got < <(complete_words pmctl "$TMP/stub/pmctl" revoke --force n)
expect_all "pmctl revoke --force n" node0 -- "${got[@]}"
mapfile -t got < <(complete_words pmctl "$TMP/stub/pmctl" revoke node0 "")
((${#got[@]} == 0)) && ok "pmctl revoke DEVICE: one device only" ||
	bad "pmctl revoke DEVICE: offered ${got[*]} for a second"

# The real pmctl: nothing, quietly, without a broker...
export PAGEMAP_SOCKET=$TMP/none.sock
complete_words pmctl pmctl revoke "" >"$TMP/out" 2>"$TMP/err"
if [[ -s $TMP/out || -s $TMP/err ]]; then
	bad "pmctl revoke without a broker: offered '$(cat "$TMP/out")', said '$(cat "$TMP/err")'"
else
	ok "pmctl revoke without a broker: nothing, silently"
fi
# ...and what pmctl pools lists with one (where this pmctl has pools).
SOCK=$TMP/broker.sock
"$PAGEMAPD" --socket "$SOCK" --topology "$Q" 2>"$TMP/broker.log" &
BROKER_PID=$!
for _ in $(seq 200); do
	[[ -S $SOCK ]] && break
	sleep 0.05
done
if ! [[ -S $SOCK ]]; then
	bad "pagemapd did not start: $(cat "$TMP/broker.log")"
elif "$PMCTL" --socket "$SOCK" pools >"$TMP/pools" 2>/dev/null; then
	mapfile -t want < <(awk 'NR > 1 && NF { print $1 }' "$TMP/pools" | sort -u)
	mapfile -t got < <(complete_words pmctl pmctl --socket "$SOCK" revoke "")
	if ((${#want[@]} == 0)); then
		bad "pmctl pools listed no device: $(cat "$TMP/pools")"
	else
		expect_all "pmctl --socket S revoke: pmctl pools' devices" "${want[@]}" -- "${got[@]}"
	fi
	mapfile -t got < <(complete_words pmctl pmctl --socket "$SOCK" restore "")
	expect_all "pmctl --socket S restore: pmctl pools' devices" "${want[@]}" -- "${got[@]}"
else
	echo "note: this pmctl has no 'pools' command yet: device completion not checked"
	mapfile -t got < <(complete_words pmctl pmctl --socket "$SOCK" revoke "")
	((${#got[@]} == 0)) && ok "pmctl revoke, pmctl without pools: nothing" ||
		bad "pmctl revoke, pmctl without pools: offered ${got[*]}"
fi

echo "$((CHECKS - FAILS)) of $CHECKS checks passed"
((FAILS == 0))
