#!/bin/sh
# Enforces STYLE.md section 2's include rules by grepping #include lines:
#   tools -> core -> {sched, simd, quant}; simd -> quant; sched -> libc+hwloc;
#   quant -> libc; server -> core/tessera.h only (the public API), and nothing
#   below includes server/. Intrinsics headers only under simd/, hwloc only in
#   sched/topo.c, libnuma only in core/mem.c, cblas only in core/dense.c,
#   libmicrohttpd only in server/http.c, cJSON only under server/.
bad=0
fail() { echo "check-deps: $1"; bad=1; }
for f in quant/*.c quant/*.h; do
    grep -Hn '#include "\.\./\(core\|sched\|simd\)/' "$f" && fail "$f: quant/ includes only libc"
done
for f in sched/*.c sched/*.h; do
    grep -Hn '#include "\.\./\(simd\|quant\)/' "$f" && fail "$f: sched/ must not include simd/ or quant/"
    grep -Hn '#include "\.\./core/' "$f" | grep -v 'core/tessera.h' && fail "$f: sched/ includes only core/tessera.h"
done
for f in simd/*.c simd/*.h simd/*/*.c simd/*/*.h simd/*/*/*.c simd/*/*/*.h; do
    [ -f "$f" ] || continue
    grep -Hn '#include "\.\./.*\(core\|sched\)/' "$f" | grep -v 'core/tessera.h' && fail "$f: simd/ includes only quant/"
done
for f in server/*.c server/*.h; do
    [ -f "$f" ] || continue
    grep -Hn '#include "\.\./\(sched\|simd\|quant\)/' "$f" && fail "$f: server/ uses the public API only"
    grep -Hn '#include "\.\./core/' "$f" | grep -v 'core/tessera.h' && fail "$f: server/ includes only core/tessera.h"
done
for f in core/*.c core/*.h sched/*.c sched/*.h simd/*.c simd/*.h quant/*.c quant/*.h; do
    grep -Hn '#include "\.\./server/' "$f" && fail "$f: nothing below server/ includes it"
done
for f in $(grep -ln '<microhttpd.h>' */*.c */*.h 2>/dev/null); do
    [ "$f" = server/http.c ] || fail "$f: libmicrohttpd only in server/http.c"
done
for f in $(grep -ln '<cjson/cJSON.h>' */*.c */*.h 2>/dev/null); do
    case "$f" in server/*|tests/*|bench/*) ;; *) fail "$f: cJSON only under server/ (and its tests)";; esac
done
for f in core/*.c core/*.h quant/*.c sched/*.c tools/*.c; do
    grep -Hln 'immintrin.h\|arm_neon.h' "$f" && fail "$f: intrinsics only under simd/"
done
for f in $(grep -ln '<hwloc.h>' */*.c */*.h 2>/dev/null); do
    [ "$f" = sched/topo.c ] || fail "$f: hwloc only in sched/topo.c"
done
for f in $(grep -ln '<numa.h>\|<numaif.h>' */*.c */*.h 2>/dev/null); do
    [ "$f" = core/mem.c ] || fail "$f: libnuma only in core/mem.c"
done
for f in $(grep -ln '<cblas.h>' */*.c */*.h 2>/dev/null); do
    [ "$f" = core/dense.c ] || fail "$f: cblas only in core/dense.c"
done
[ $bad = 0 ] && echo "check-deps: ok"
exit $bad
