"""The generated DPDK program meeting NICs it was not planned for.

A real NIC's answers (driver, key length, RETA size, hash types, queues, what reads back, link,
NUMA socket) are faked at link time: tests/fake_nic.c wraps the ethdev and rte_flow calls of nfx-nf
(``-Wl,--wrap``) over net_pcap ports, which still carry the frames, one rx_pcap per queue. So the
program's own decisions run, compiled against DPDK 22.11, on frames split as such a NIC would
steer them (or not). Without the fake: net_pcap and net_null as they are.
"""
from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from explorer import build
from explorer.processes import dpdk_runtime_dirs, eal_prefix, run_child
from explorer.traffic.pcap import read_pcap
from explorer.verify.pcap_run import microsecond_trace
from explorer.verify.replay import eal_args
from explorer.verify.split import split_trace

from codegen_fixtures import pcap_vdevs, traffic

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.dpdk
WRAPPED = ("rte_eth_dev_info_get", "rte_eth_dev_configure", "rte_eth_dev_rss_hash_update",
           "rte_eth_dev_rss_hash_conf_get", "rte_eth_dev_rss_reta_update", "rte_eth_dev_rss_reta_query",
           "rte_flow_create", "rte_eth_link_get_nowait", "rte_eth_dev_socket_id", "rte_eth_dev_start",
           "rte_eth_dev_adjust_nb_rx_tx_desc", "rte_eth_rx_queue_setup")
OBJECTS = ("main.o", "nf.o", "nf_parallel.o", "nf_pool.o", "nf_replica.o", "nf_state.o", "nf_trace.o", "nf_plan.o")


@pytest.fixture(autouse=True)
def _repo_root(monkeypatch):
    monkeypatch.chdir(ROOT)


def _binaries(p) -> tuple[Path, Path]:
    """nfx-nf built as the project's README says (make), and nfx-fake: the same objects linked with
    tests/fake_nic.c in front of ethdev."""
    folder = Path(p.folder)
    done = run_child(["make", "-C", str(folder), "-j2", "nfx-nf"], timeout=300)
    assert done.returncode == 0, done.stderr
    cflags, libs = build.dpdk_flags()
    fake = folder / "fake_nic.o"
    done = run_child(["gcc", "-O1", "-Wall", "-Wextra", "-Werror", *cflags, "-c", str(ROOT / "tests" / "fake_nic.c"),
                      "-o", str(fake)], timeout=120)
    assert done.returncode == 0, done.stderr
    done = run_child(["gcc", "-o", str(folder / "nfx-fake"), *(str(folder / o) for o in OBJECTS), str(fake),
                      "-Wl," + ",".join(f"--wrap={f}" for f in WRAPPED), *libs], timeout=120)
    assert done.returncode == 0, done.stderr
    return folder / "nfx-nf", folder / "nfx-fake"


def _generated(folder, nf, nic, cores):
    """What ``nfx generate sample_nfs/NF.c --nic NIC --cores CORES --strategy sn`` writes."""
    from explorer import pipeline
    from explorer.codegen import parallel_plan, write_project

    solution = pipeline.solve(f"sample_nfs/{nf}.c", cores=cores, nic=nic)
    return write_project(parallel_plan(solution, "sn", cores), folder / f"{nf}-{nic}-{cores}")


@pytest.fixture(scope="module")
def fw3(tmp_path_factory):
    """fw, shared nothing on 3 cores for the E810 (its RETA: entry e -> core e mod 3, which no
    smaller table repeats)."""
    p = _generated(tmp_path_factory.mktemp("fw3"), "fw", "e810", 3)
    assert p.plan.steering[0].reta[:6] == (0, 1, 2, 0, 1, 2)
    return p, _binaries(p)


@pytest.fixture(scope="module")
def pol(tmp_path_factory):
    """pol on 2 cores for the E810: its WAN port hashes dst_ip alone (flow rules with L3_DST_ONLY)."""
    p = _generated(tmp_path_factory.mktemp("pol"), "pol", "e810", 2)
    return p, _binaries(p)


def _split_as(plan, reta_size: int):
    """``plan`` as a port with a ``reta_size``-entry RETA steers: entry b holds the plan's entry b
    modulo its size, as nfx-nf programs it."""
    steering = tuple(dataclasses.replace(d, reta=tuple(d.reta[e % reta_size] for e in range(len(d.reta))))
                     for d in plan.steering)
    return dataclasses.replace(plan, steering=steering)


def _run(binary, plan, folder, *options, trace=None, split_plan=None, fake=None, vdevs=None, memory=None,
         cores=None, timeout=90):
    """Run ``binary`` on net_pcap ports fed with ``trace`` split per queue by ``split_plan`` (the
    plan itself by default), under the fake NIC's settings ``fake``."""
    folder = Path(folder)
    trace = microsecond_trace(traffic("mixed", 1500)) if trace is None else trace
    if vdevs is None:
        vdevs = pcap_vdevs(split_plan or plan, trace, folder)
    env = {k: v for k, v in os.environ.items() if not k.startswith("FAKE_")}
    env.update({f"FAKE_{k}": str(v) for k, v in (fake or {}).items()})
    with eal_prefix("nic") as prefix:
        argv = [str(binary), *eal_args(cores or plan.cores, prefix, memory_mb=memory), *vdevs, "--", *options]
        done = run_child(argv, timeout=timeout, env=env)
        assert not any(d.exists() for d in dpdk_runtime_dirs(prefix)), "the program left its runtime folder"
    return done


def _last(done) -> str:
    return done.stderr.strip().splitlines()[-1]


def _received(done) -> int:
    line = next(ln for ln in done.stdout.splitlines() if ln.startswith("nfx-nf: received "))
    return int(line.split(",")[0].rsplit(" ", 1)[1])


# ---- RETA sizes and key lengths other than the plan's ------------------------------------------------

@pytest.mark.parametrize("reta_size,key_bytes", [(64, 52), (128, 40), (512, 52), (2048, 52)])
def test_other_reta_sizes_and_key_lengths_keep_the_steering(tmp_path, fw3, reta_size, key_bytes):
    """A port with another RETA size or key length gets the plan's key (cut, or followed by zeros:
    IPv4 hashes read its first 16 bytes) and table (entry b -> the plan's entry b mod 512); frames
    split as that port steers them all run. A smaller table than the plan's says that it spreads the
    load otherwise (fw's e mod 3 does not repeat every 64 or 128 entries)."""
    p, (_, fake) = fw3
    trace = microsecond_trace(traffic("mixed", 1500))
    done = _run(fake, p.plan, tmp_path, "--rx-time", "--ordered", trace=trace,
                split_plan=_split_as(p.plan, min(reta_size, 512)),
                fake={"RETA_SIZE": reta_size, "KEY_BYTES": key_bytes})
    assert done.returncode == 0, done.stderr
    assert _received(done) == len(trace)
    warned = f"its RETA has {reta_size} entries, the plan's 512" in done.stderr
    assert warned == (reta_size < 512), done.stderr
    cut = f"takes {key_bytes}-byte RSS keys, the plan has 52-byte ones: it gets the plan's key cut short"
    assert (cut in done.stdout) == (key_bytes != 52)


def test_a_smaller_reta_is_what_the_frames_are_checked_against(tmp_path, fw3):
    """Frames split by the plan's 512 entries are not where a 128-entry port sends them: the check
    expects the port's table, and the run stops at the first frame on another core."""
    p, (_, fake) = fw3
    done = _run(fake, p.plan, tmp_path, "--rx-time", "--ordered", fake={"RETA_SIZE": 128})
    assert done.returncode == 1
    assert "cannot hash as this plan needs: it delivered a frame (" in _last(done)
    assert "which the plan steers to core" in _last(done)


def test_a_reta_that_is_not_a_power_of_two_stops_the_program(tmp_path, fw3):
    p, (_, fake) = fw3
    done = _run(fake, p.plan, tmp_path, fake={"RETA_SIZE": 192})
    assert done.returncode == 1
    assert "its RETA has 192 entries; nfx programs RETAs of a power of two up to 2048" in _last(done)


def test_a_key_and_reta_that_read_back_otherwise_stop_the_program(tmp_path, fw3):
    p, (_, fake) = fw3
    key = _run(fake, p.plan, tmp_path / "key", fake={"KEY_BACK": "flip"})
    assert key.returncode == 1
    assert "its RSS key reads back different from the solved key (byte 3 is" in _last(key)
    assert "the port is of the plan's NIC profile e810, whose driver should take this" in _last(key)
    reta = _run(fake, p.plan, tmp_path / "reta", fake={"RETA_BACK": "flip"})
    assert reta.returncode == 1 and "RETA entry 5 reads back as" in _last(reta)
    # A driver that cannot report its RETA: the frames tell, every one checked.
    unread = _run(fake, p.plan, tmp_path / "unread", "--rx-time", "--ordered", fake={"RETA_BACK": "none"})
    assert unread.returncode == 0, unread.stderr
    assert "port 0 (net_ice): its RETA cannot be read back" in unread.stdout


def test_a_port_whose_hash_is_not_the_plans_stops_the_program(tmp_path, fw3):
    """The start-up self-test checks rte_softrss alone; a port that took key and RETA but hashes
    otherwise (another function, other fields) shows in the hash it gives each frame: the first
    frame whose hash is not the plan's stops the run, even on its planned queue."""
    p, (_, fake) = fw3
    done = _run(fake, p.plan, tmp_path, "--rx-time", "--ordered", fake={"HASH": "0x12345678"})
    assert done.returncode == 1
    assert "it delivered a frame (" in _last(done)
    assert "with hash 0x12345678 where the plan's key gives 0x" in _last(done)


# ---- hash types, drivers ---------------------------------------------------------------------------------

def test_missing_hash_types_are_named(tmp_path, fw3):
    p, (_, fake) = fw3
    done = _run(fake, p.plan, tmp_path, fake={"RSS_OFFLOADS": "0x4"})
    assert done.returncode == 1
    assert ("cannot hash as this plan needs: it cannot hash RTE_ETH_RSS_NONFRAG_IPV4_TCP | "
            "RTE_ETH_RSS_NONFRAG_IPV4_UDP, which the plan's rss_hf") in _last(done)


def test_an_unknown_nic_runs_a_plan_that_selects_no_fields(tmp_path, fw3):
    """fw hashes whole fields on both ports, as every Toeplitz RSS NIC does: a NIC nfx has no
    profile for gets the plan (40-byte keys, 128 entries) and every frame's core is checked; the
    same NIC steering otherwise stops the run and says that nfx has no profile for it."""
    p, (_, fake) = fw3
    nic = {"DRIVER": "net_bnxt", "KEY_BYTES": 40, "RETA_SIZE": 128}
    trace = microsecond_trace(traffic("mixed", 1500))
    done = _run(fake, p.plan, tmp_path / "good", "--rx-time", "--ordered", trace=trace,
                split_plan=_split_as(p.plan, 128), fake=nic)
    assert done.returncode == 0, done.stderr
    assert "port 0 (net_bnxt) is not of the plan's NIC profile e810 (net_ice)" in done.stdout
    assert _received(done) == len(trace)
    done = _run(fake, p.plan, tmp_path / "bad", "--rx-time", "--ordered", trace=trace, fake=nic)
    assert done.returncode == 1
    assert "nfx has no NIC profile for net_bnxt (nfx generate --nic takes e810, x710, cx5, 82599)" in _last(done)


# i40e's port-level hash types (I40E_RSS_OFFLOAD_ALL in DPDK 22.11): no RTE_ETH_RSS_IPV4 and no *_ONLY flag
I40E_OFFLOADS = sum(1 << b for b in (3, 4, 5, 6, 7, 9, 10, 11, 12, 13, 14))


@pytest.mark.parametrize("nf,rules", [("fw", 0), ("pol", 3), ("cl", 3)])
def test_x710_plans_take_the_types_an_i40e_port_has(tmp_path, nf, rules):
    """An X710 port offers FRAG_IPV4 and NONFRAG_IPV4_OTHER, not RTE_ETH_RSS_IPV4, so every x710 plan
    stopped at start-up ('it cannot hash RTE_ETH_RSS_IPV4, which the plan's rss_hf ... needs'); and its
    TCP/UDP types hash the 4-tuple, so a plan hashing addresses alone (cl) needs rules there too."""
    p = _generated(tmp_path, nf, "x710", 2)
    assert sum(len(d.flow_rules) for d in p.plan.steering) == rules
    assert all(d.port_hf & ~I40E_OFFLOADS == 0 for d in p.plan.steering)
    assert "  port rss_hf 0xb8 (the i40e port's own types for them)" in p.plan.text().splitlines()
    _, fake = _binaries(p)
    trace = microsecond_trace(traffic("mixed", 1500))
    done = _run(fake, p.plan, tmp_path / "run", "--rx-time", "--ordered", trace=trace,
                fake={"DRIVER": "net_i40e", "RSS_OFFLOADS": hex(I40E_OFFLOADS)})
    assert done.returncode == 0, done.stderr
    assert _received(done) == len(trace)


def test_field_selection_on_another_nic_names_its_profile(tmp_path, pol):
    p, (_, fake) = pol
    done = _run(fake, p.plan, tmp_path, fake={"DRIVER": "mlx5_pci", "KEY_BYTES": 40})
    assert done.returncode == 1
    message = _last(done)
    assert message.startswith("nfx-nf: port 1 (mlx5_pci) cannot hash as this plan needs: it is not a port of NIC "
                              "profile e810 (net_ice), whose field selection (RTE_ETH_RSS_IPV4 | "
                              "RTE_ETH_RSS_L3_DST_ONLY)")
    assert "nfx generate --nic cx5" in message


def test_a_pooled_plan_reads_back_a_longer_key_than_its_own(tmp_path):
    """nat for the ConnectX (40-byte keys, per-core pools on the WAN) on an mlx5 port with 52-byte
    keys: the pools are recomputed from the key read back into a buffer that holds the port's whole
    key (the fake, like ice, writes all of it: a 40-byte buffer overflowed), and they are the plan's."""
    p = _generated(tmp_path, "nat", "cx5", 2)
    assert p.plan.pools
    _, fake = _binaries(p)
    trace = microsecond_trace(traffic("mixed", 1500))
    done = _run(fake, p.plan, tmp_path / "run", "--rx-time", "--ordered", trace=trace,
                fake={"DRIVER": "mlx5_pci", "KEY_BYTES": 52})
    assert "fake_nic:" not in done.stderr, done.stderr
    assert done.returncode == 0, done.stderr
    assert _received(done) == len(trace)
    # On an E810 the WAN's src_ip + dst_port cannot be selected as mlx5 does; --degraded-ok goes on
    # to the pools, whose read-back overflowed a 40-byte buffer with ice's 52-byte key.
    done = _run(fake, p.plan, tmp_path / "ice", "--rx-time", "--ordered", "--degraded-ok", trace=trace,
                fake={"DRIVER": "net_ice", "KEY_BYTES": 52})
    assert "fake_nic:" not in done.stderr, done.stderr
    assert "DEGRADED: port 1 (net_ice)" in done.stderr


# ---- queues, lcores, ports, sockets, links, memory ---------------------------------------------------------

def test_too_few_queues_say_how_many_cores_fit(tmp_path, fw3):
    p, (real, fake) = fw3
    done = _run(fake, p.plan, tmp_path / "nic", fake={"QUEUES": 2})
    assert done.returncode == 1
    assert _last(done) == ("nfx-nf: port 0 (net_ice) offers 2 rx and 2 tx queues; this build needs 3 of each (one per "
                           "lcore). To fix: generate for at most 2 cores (nfx generate --cores 2); or steer in "
                           "software (--dispatch, with 4 lcores)")
    one = tmp_path / "one.pcap"
    from explorer.traffic.pcap import write_pcap
    write_pcap(one, [], [])
    vdevs = [a for d in range(2) for a in ("--vdev", f"net_pcap{d},rx_pcap={one},tx_pcap={tmp_path / f'o{d}.pcap'}")]
    done = _run(real, p.plan, tmp_path / "pcap", vdevs=vdevs)
    assert done.returncode == 1
    assert "offers 1 rx and 1 tx queues" in _last(done) and "nfx generate --cores 1" in _last(done)
    assert "or give the device 3 queues (net_pcap: one rx_pcap and one tx_pcap per core" in _last(done)


def test_lcores_and_ports_other_than_the_build_needs(tmp_path, fw3):
    p, (real, _) = fw3
    nulls = [a for d in range(2) for a in ("--vdev", f"net_null{d}")]
    done = _run(real, p.plan, tmp_path / "lcores", vdevs=nulls, cores=2)
    assert done.returncode == 1
    assert _last(done) == "nfx-nf: this build runs 3 cores but EAL has 2 lcores (give e.g. -l 0-2)"
    done = _run(real, p.plan, tmp_path / "ports", vdevs=nulls[:2])
    assert done.returncode == 1
    assert _last(done) == ("nfx-nf: the NF has 2 devices but DPDK found 1 ports (give one per device, e.g. --vdev)")


def test_a_link_down_and_a_remote_socket_are_said_and_the_run_goes_on(tmp_path, fw3):
    p, (_, fake) = fw3
    started = time.monotonic()
    done = _run(fake, p.plan, tmp_path / "link", "--rx-time", "--ordered", fake={"LINK": "down"})
    assert done.returncode == 0, done.stderr
    assert time.monotonic() - started >= 3  # it waited for the links first
    assert "port 0 (NF device 0): its link is still down after 3000 ms" in done.stderr
    done = _run(fake, p.plan, tmp_path / "socket", "--rx-time", "--ordered", fake={"SOCKET": 1})
    assert done.returncode == 0, done.stderr
    assert "port 0 (net_ice) is on NUMA socket 1, lcores 0, 1, 2 are not" in done.stderr


def test_too_little_memory_for_the_mbufs_says_how_much(tmp_path, fw3):
    """3 cores and 2 ports of 1024-descriptor rings: 12,288 mbufs in the rings, and per lcore 384
    in its cache and 640 in hand (2 ports' rx and tx bursts of 32 frames of up to 5 segments)."""
    p, (real, _) = fw3
    nulls = [a for d in range(2) for a in ("--vdev", f"net_null{d}")]
    done = _run(real, p.plan, tmp_path, vdevs=nulls, memory=48)
    assert done.returncode == 1
    assert _last(done).startswith("nfx-nf: cannot create the mbuf pool: 15360 mbufs of 2176 bytes, about 33 MB")
    assert "give EAL more memory (-m MB" in _last(done)


# ---- devices that do not hash: the split is checked ----------------------------------------------------------

def _swapped(plan, folder, trace):
    """net_pcap vdevs whose device-0 queues get each other's frames (the input split wrongly)."""
    split_trace(plan, trace, folder / "in")
    (folder / "out").mkdir(parents=True, exist_ok=True)
    vdevs = []
    for d in range(plan.devices):
        order = [(c + 1) % plan.cores if d == 0 else c for c in range(plan.cores)]
        rx = ",".join(f"rx_pcap={folder / 'in' / f'dev{d}-core{c}.pcap'}" for c in order)
        tx = ",".join(f"tx_pcap={folder / 'out' / f'dev{d}-core{c}.pcap'}" for c in range(plan.cores))
        vdevs += ["--vdev", f"net_pcap{d},{rx},{tx}"]
    return vdevs


def test_frames_split_to_the_wrong_queues_stop_the_run(tmp_path, fw3):
    """net_pcap does not hash: its rx_pcap files must be split as the plan steers. Split wrongly, the
    first frame on another core stops the run before the NF sees it, and says how to split; with
    --degraded-ok every frame runs and the misplaced ones are counted."""
    p, (real, _) = fw3
    trace = microsecond_trace(traffic("mixed", 1500))
    done = _run(real, p.plan, tmp_path, "--rx-time", "--ordered", vdevs=_swapped(p.plan, tmp_path / "a", trace))
    assert done.returncode == 1
    message = _last(done)
    assert message.startswith("nfx-nf: port 0 (net_pcap) cannot hash as this plan needs: it delivered a frame (")
    assert "split its input per queue as the plan steers it (python -m explorer.verify.split)" in message
    assert all(len(read_pcap(f)[1]) == 0 for f in (tmp_path / "a" / "out").iterdir())  # the NF saw nothing
    done = _run(real, p.plan, tmp_path, "--rx-time", "--ordered", "--degraded-ok",
                vdevs=_swapped(p.plan, tmp_path / "b", trace))
    assert done.returncode == 0, done.stderr
    assert "******** DEGRADED: port 0 delivered a frame to core" in done.stderr
    assert _received(done) == len(trace)
    assert "of the frames checked ran on another core than the plan's" in done.stdout


# ---- SIGINT and SIGTERM --------------------------------------------------------------------------------------

@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_stops_the_lcores_and_the_ports(tmp_path, fw3, signum):
    """Ctrl-C or SIGTERM mid-run: every lcore leaves its loop, the ports are stopped and closed, the
    statistics are printed, the exit status is 0 and EAL's runtime folder is gone."""
    p, (real, _) = fw3
    nulls = [a for d in range(2) for a in ("--vdev", f"net_null{d}")]
    with eal_prefix("nic-signal") as prefix:
        argv = [str(real), *eal_args(3, prefix), *nulls, "--", "--degraded-ok"]  # net_null: no real hash
        process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            said = []
            while not said or "sn on 3 cores" not in said[-1]:  # set up, the lcores about to start
                said.append(process.stdout.readline())
                assert said[-1], (said, process.stderr.read())
            time.sleep(0.3)  # the lcores in their loops, receiving
            process.send_signal(signum)
            out, err = process.communicate(timeout=30)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
        assert process.returncode == 0, err
        assert [ln.split(":")[1].strip() for ln in out.splitlines() if " stopped" in ln] == ["port 0 stopped",
                                                                                            "port 1 stopped"]
        lcores = [ln for ln in out.splitlines() if ln.startswith("nfx-nf: lcore ")]
        assert len(lcores) == 3 and all(int(ln.split("received ")[1].split(",")[0]) > 0 for ln in lcores)
        assert not any(d.exists() for d in dpdk_runtime_dirs(prefix))


# ---- frame sizes and mbufs -------------------------------------------------------------------------------------

def _jumbo_trace():
    """The mixed trace with every tenth frame padded to 9,018 bytes (the longest nfx run takes)."""
    trace = microsecond_trace(traffic("mixed", 600))
    frames = [f + bytes(9018 - len(f)) if i % 10 == 0 and len(f) < 9018 else f for i, f in enumerate(trace.frames)]
    return dataclasses.replace(trace, frames=tuple(frames))


@pytest.mark.parametrize("fake,mtu,why", [
    ({"RX_OFFLOADS": "0"}, 2030, "it cannot scatter a frame over several mbufs (no RTE_ETH_RX_OFFLOAD_SCATTER) and "
                                 "an mbuf holds 2048 bytes, 18 of them needed for Ethernet overhead"),
    ({"MAX_RX_PKTLEN": 9000, "MAX_MTU": 8982}, 8982, "its largest MTU is 8982 bytes"),
    ({"MAX_RX_PKTLEN": 4000}, 3982,
     "its largest rx frame (max_rx_pktlen) is 4000 bytes, 18 of them Ethernet overhead"),
])
def test_the_mtu_is_what_the_port_and_its_mbufs_take(tmp_path, fw3, fake, mtu, why):
    """A port that cannot scatter frames over mbufs, or takes shorter frames than 9,018 bytes, gets
    the largest MTU it and a 2,048-byte mbuf allow (asking 9,004 makes such a driver refuse the
    port) and a warning that longer frames are dropped by the NIC."""
    p, (real, nic) = fw3
    trace = _jumbo_trace()
    done = _run(nic, p.plan, tmp_path, "--rx-time", "--ordered", trace=trace, fake=fake)
    assert done.returncode == 0, done.stderr
    assert (f"port 0 (net_ice): {why}, so its MTU is set to {mtu} bytes and the NIC drops frames over {mtu + 14} "
            "bytes") in done.stderr
    # net_pcap itself drops no frame for its MTU: every frame reaches the NF, the long ones scattered
    assert _received(done) == len(trace)
    plain = _run(real, p.plan, tmp_path / "pcap", "--rx-time", "--ordered", trace=trace)
    assert plain.returncode == 0 and "WARNING" not in plain.stderr, plain.stderr
    assert _received(plain) == len(trace)


def test_the_mbuf_pool_holds_the_rings_the_driver_chose(tmp_path, fw3):
    """A driver that raises the descriptor counts (rte_eth_dev_adjust_nb_rx_tx_desc) fills larger
    rx rings: the pool is sized after the adjustment, from the counts it gave (a pool sized for 1024
    descriptors ran dry filling the rings: 'cannot set up queue')."""
    p, (_, nic) = fw3
    trace = microsecond_trace(traffic("mixed", 600))
    done = _run(nic, p.plan, tmp_path, "--rx-time", "--ordered", trace=trace, fake={"DESC_MIN": 4096})
    assert done.returncode == 0, done.stderr
    assert "nfx-nf: port 0: 4096 rx and 4096 tx descriptors per queue" in done.stdout
    pool = int(next(ln for ln in done.stdout.splitlines() if ln.startswith("nfx-nf: mbuf pool: ")).split()[3])
    assert pool >= 3 * 2 * (4096 + 4096)
    assert _received(done) == len(trace)


# ---- the steering check: frames without ports ------------------------------------------------------------------

def _without_ports():
    """The IPv4 frames of the mixed trace that have no ports to hash: fragments and protocols other
    than TCP and UDP (a NIC hashes them on their addresses alone)."""
    trace = microsecond_trace(traffic("mixed", 3000))
    keep = []
    for i, f in enumerate(trace.frames):
        if len(f) < 34 or f[12:14] != b"\x08\x00":
            continue
        fragment = int.from_bytes(f[20:22], "big") & 0x3fff
        if fragment or f[23] not in (6, 17):
            keep.append(i)
    assert len(keep) > 20
    return dataclasses.replace(trace, timestamps=trace.timestamps[keep], devices=trace.devices[keep],
                               frames=tuple(trace.frames[i] for i in keep))


def test_fragments_and_other_protocols_are_checked_on_their_addresses(tmp_path, fw3):
    """Fragments and ICMP frames split as the plan steers them (their addresses hashed with the plan's
    key) all run; split to the wrong queues, the first stops the run and is named by its addresses and
    protocol; a port that gives them another hash than the plan's key does is caught as well."""
    p, (real, nic) = fw3
    trace = _without_ports()
    done = _run(real, p.plan, tmp_path / "good", "--rx-time", "--ordered", trace=trace)
    assert done.returncode == 0, done.stderr
    assert _received(done) == len(trace)
    done = _run(real, p.plan, tmp_path, "--rx-time", "--ordered", vdevs=_swapped(p.plan, tmp_path / "swapped", trace))
    assert done.returncode == 1
    assert "cannot hash as this plan needs: it delivered a frame (" in _last(done)
    assert " of IP protocol " in _last(done) and "which the plan steers to core" in _last(done)
    done = _run(nic, p.plan, tmp_path / "hash", "--rx-time", "--ordered", trace=trace, fake={"HASH": "0x12345678"})
    assert done.returncode == 1
    assert " of IP protocol " in _last(done) and "with hash 0x12345678 where the plan's key gives 0x" in _last(done)


# ---- --dispatch: software RSS for ports with one rx queue ------------------------------------------------------

def _lcore_received(done) -> dict[int, int]:
    return {int(ln.split()[2].rstrip(":")): int(ln.split("received ")[1].split(",")[0])
            for ln in done.stdout.splitlines() if ln.startswith("nfx-nf: lcore ")}


@pytest.mark.parametrize("options", [("--rx-time", "--ordered"), ("--idle-ms", "500")])
def test_a_dispatcher_steers_one_queue_to_the_planned_cores(tmp_path, fw3, options):
    """net_pcap with a single rx_pcap per device (one rx queue, no RSS) and --dispatch on 4 lcores:
    the main lcore hashes each frame with the plan's key and RETA and hands it to its core's ring.
    Every frame is checked on its core (the steering check of the hardware path); each core gets
    exactly the frames the plan's split gives it and, with --ordered (each core's frames in trace
    order), the NF's output is the per-queue run's."""
    p, (real, _) = fw3
    trace = microsecond_trace(traffic("mixed", 1500))
    split = pcap_vdevs(p.plan, trace, tmp_path / "split")
    planned = {c: sum(len(read_pcap(tmp_path / "split" / "in" / f"dev{d}-core{c}.pcap")[1]) for d in range(2))
               for c in range(3)}
    queues = _run(real, p.plan, tmp_path / "queues", *options, vdevs=split)
    assert queues.returncode == 0, queues.stderr
    from explorer.traffic.pcap import write_pcap
    (tmp_path / "one").mkdir()
    vdevs = []
    for d in range(2):
        mine = [i for i in range(len(trace)) if trace.devices[i] == d]
        write_pcap(tmp_path / "one" / f"in{d}.pcap", trace.timestamps[mine], [trace.frames[i] for i in mine])
        vdevs += ["--vdev", f"net_pcap{d},rx_pcap={tmp_path / 'one' / f'in{d}.pcap'},"
                            f"tx_pcap={tmp_path / 'one' / f'out{d}.pcap'}"]
    refused = _run(real, p.plan, tmp_path / "refused", *options, vdevs=vdevs)
    assert refused.returncode == 1 and "or steer in software (--dispatch, with 4 lcores)" in _last(refused)
    done = _run(real, p.plan, tmp_path / "dispatch", *options, "--dispatch", vdevs=vdevs, cores=4)
    assert done.returncode == 0, done.stderr
    assert "steered in software by the dispatcher (--dispatch)" in done.stdout
    assert f"nfx-nf: dispatched {len(trace)}" in done.stdout
    assert _lcore_received(done) == {0: 0, **{c + 1: planned[c] for c in range(3)}}
    assert _received(done) == len(trace) and ", tx failures 0\n" in done.stdout
    if "--ordered" not in options:  # each core's order across ports is the timing's: outputs may differ
        return
    for d in range(2):
        ours = sorted(read_pcap(tmp_path / "one" / f"out{d}.pcap")[1])
        theirs = sorted(f for c in range(3) for f in read_pcap(tmp_path / "split" / "out" / f"dev{d}-core{c}.pcap")[1])
        assert ours == theirs and ours


def test_a_dispatcher_stops_on_packets_and_on_a_signal(tmp_path, fw3):
    """--dispatch on net_null ports (endless frames): --packets N stops the dispatcher after the
    burst that reaches N and every frame it dispatched is processed; SIGTERM stops it too, the
    frames still on the cores' rings freed, the ports stopped and EAL's runtime folder removed."""
    p, (real, _) = fw3
    nulls = [a for d in range(2) for a in ("--vdev", f"net_null{d}")]
    done = _run(real, p.plan, tmp_path, "--dispatch", "--packets", "5000", vdevs=nulls, cores=4)
    assert done.returncode == 0, done.stderr
    dispatched = int(next(ln for ln in done.stdout.splitlines() if ln.startswith("nfx-nf: dispatched ")).split()[2])
    assert 5000 <= dispatched < 5000 + 2 * 32 and _received(done) == dispatched
    with eal_prefix("nic-dispatch") as prefix:
        argv = [str(real), *eal_args(4, prefix), *nulls, "--", "--dispatch"]
        process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            said = []
            while not said or "sn on 3 cores" not in said[-1]:
                said.append(process.stdout.readline())
                assert said[-1], (said, process.stderr.read())
            time.sleep(0.3)
            process.send_signal(signal.SIGTERM)
            out, err = process.communicate(timeout=30)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
        assert process.returncode == 0, err
        assert "nfx-nf: port 0 stopped" in out and "nfx-nf: port 1 stopped" in out
        assert int(next(ln for ln in out.splitlines() if ln.startswith("nfx-nf: dispatched ")).split()[2]) > 0
        assert not any(d.exists() for d in dpdk_runtime_dirs(prefix))
