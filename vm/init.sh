#!/bin/busybox sh
# /init of the kproxy IPVS test VM (packed by `cargo xtask vm`, see xtask/src/vm.rs).
# Mounts the pseudo file systems, loads the modules listed in /etc/kproxy-modules, runs the
# smoke checks and every program in /tests, prints one result marker and powers off.
# The marker is what the host looks for on the serial console: no marker means failure.
/bin/busybox --install -s /bin
export PATH=/bin:/sbin:/usr/bin:/usr/sbin
mkdir -p /proc /sys /dev /run /tmp /var/run
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mount -t tmpfs tmpfs /run
mount -t tmpfs tmpfs /tmp
mkdir -p /run/netns
# Modules the kernel asks for on its own (e.g. nft expressions) load through busybox modprobe.
echo /bin/modprobe > /proc/sys/kernel/modprobe

fail=0
note() { echo "KPROXY-VM: $*"; }
check() {
    # check NAME CMD...: run CMD, report it, remember failure.
    name=$1; shift
    if out=$("$@" 2>&1); then
        note "ok   $name"
    else
        note "FAIL $name: $out"
        fail=1
    fi
}

note "kernel $(uname -r)"
for m in $(cat /etc/kproxy-modules); do
    check "modprobe $m" modprobe "$m"
done
check "ipvsadm -Ln" /usr/sbin/ipvsadm -Ln
/usr/sbin/ipvsadm -Ln
check "ip netns add" /usr/sbin/ip netns add smoke
check "ip link add dummy" /usr/sbin/ip -n smoke link add kube-ipvs0 type dummy
check "ip netns del" /usr/sbin/ip netns del smoke

if [ "$fail" = 0 ]; then
    for t in /tests/*; do
        [ -x "$t" ] || continue
        note "run  $t"
        if "$t" "$@"; then
            note "ok   $t"
        else
            note "FAIL $t (exit $?)"
            fail=1
        fi
    done
fi

if [ "$fail" = 0 ]; then
    echo "KPROXY-VM-RESULT: PASS"
else
    echo "KPROXY-VM-RESULT: FAIL"
fi
sync
poweroff -f
