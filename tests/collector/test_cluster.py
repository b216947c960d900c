"""Host collectors on this machine's real psutil, the NVML mapping through a fake NVML module
(no GPU here), and the RunningCollector policies."""

from __future__ import annotations

import json
import logging
import threading
from pathlib import Path
from types import SimpleNamespace

import psutil
import pynvml
import pytest

from collector.base import RunningCollector, load_collector_class
from collector.cluster.cpu import CpuCollector, usage_fields
from collector.cluster.disk import DiskCollector
from collector.cluster.mem import MemCollector, mem_fields
from collector.cluster.net import NetCollector
from collector.cluster.nvidia_smi import NvidiaSmiCollector, gpu_points, read_gpu
from collector.config import (
    CpuConfig,
    DiskConfig,
    DiskIOConfig,
    MemConfig,
    NetConfig,
    NvidiaSmiConfig,
    PrometheusConfig,
)
from tsdb.point import validate

LOG = logging.getLogger("test")
TESTDATA = Path(__file__).parent / "testdata"


def test_cpu_usage_from_two_samples():
    t = psutil.cpu_times()
    prev = t._replace(**{f: 0.0 for f in t._fields})
    cur = prev._replace(user=30.0, system=10.0, idle=50.0, iowait=10.0, guest=5.0)
    f = usage_fields(prev, cur)
    assert (f["usage_user"], f["usage_system"], f["usage_idle"], f["usage_iowait"]) == (30.0, 10.0, 50.0, 10.0)
    assert f["usage_guest"] == 5.0  # guest time is part of user time, not added to the total
    assert usage_fields(cur, cur) == {}


def test_cpu_collector_on_this_machine():
    col = CpuCollector(CpuConfig(type="cpu"), log=LOG)
    points = col.collect(1)  # the first collection measures from boot
    labels = {p.tags["cpu"] for p in points}
    assert "cpu-total" in labels and f"cpu{psutil.cpu_count() - 1}" in labels
    for p in points:
        validate(p)
        assert all(0.0 <= v <= 100.0 for v in p.fields.values())


def test_mem_fields_and_collector():
    vm = SimpleNamespace(total=1000, available=600, used=300, free=100, buffers=50, cached=250)
    assert mem_fields(vm) == {"total": 1000, "available": 600, "used": 300, "free": 100, "buffered": 50,
                              "cached": 250, "available_percent": 60.0, "used_percent": 30.0}
    (p,) = MemCollector(MemConfig(type="mem"), log=LOG).collect(3)
    assert p.measurement == "mem" and 0 < p.fields["used"] < p.fields["total"]


def test_disk_root_and_unreadable_mount_skipped(caplog):
    def statvfs(path):
        if path == "/nonexistent-mount":
            raise PermissionError(13, "Permission denied")
        import os

        return os.statvfs(path)

    real = psutil.disk_partitions(all=True)
    real = [p for p in real if p.mountpoint == "/"] + [real[0]._replace(mountpoint="/nonexistent-mount")]
    source = SimpleNamespace(disk_partitions=lambda all=False: real, disk_usage=psutil.disk_usage)
    cfg = DiskConfig(type="disk", ignore_fs=[], mount_points=["/", "/nonexistent-mount"])
    with caplog.at_level(logging.WARNING):
        points = DiskCollector(cfg, log=LOG, source=source, statvfs=statvfs).collect(4)
    (root,) = [p for p in points if p.tags["path"] == "/"]
    assert root.fields["used"] + root.fields["free"] <= root.fields["total"]
    assert root.fields["inodes_used"] == root.fields["inodes_total"] - root.fields["inodes_free"]
    assert "cannot read /nonexistent-mount" in caplog.text


def test_net_skips_loopback_unless_asked_and_diskio_names():
    names = {p.tags["interface"] for p in NetCollector(NetConfig(type="net"), log=LOG).collect(5)}
    assert "lo" not in names
    (lo,) = NetCollector(NetConfig(type="net", interfaces=["lo"]), log=LOG).collect(5)
    assert set(lo.fields) == {"bytes_sent", "bytes_recv", "packets_sent", "packets_recv", "err_in", "err_out",
                              "drop_in", "drop_out"}
    diskio = load_collector_class("diskio")(DiskIOConfig(type="diskio"), log=LOG)
    for p in diskio.collect(6):
        assert p.measurement == "diskio" and p.fields["read_bytes"] >= 0


class FakeNVML:
    """A fake NVML module (there is no GPU here) replaying readings from a JSON file; it keeps
    pynvml's constants and error class so the collector code runs unchanged."""

    NVMLError = pynvml.NVMLError

    def __init__(self, path: Path):
        data = json.loads(path.read_text())
        self.gpus, self.driver = data["gpus"], data["driver_version"]
        for name in dir(pynvml):
            if name.startswith("NVML_"):
                setattr(self, name, getattr(pynvml, name))
        self.init_calls = 0

    def _val(self, h, key):
        v = self.gpus[h][key]
        if v == "not_supported":
            raise pynvml.NVMLError(pynvml.NVML_ERROR_NOT_SUPPORTED)
        return v

    def nvmlInit(self): self.init_calls += 1
    def nvmlShutdown(self): pass
    def nvmlSystemGetDriverVersion(self): return self.driver
    def nvmlDeviceGetCount(self): return len(self.gpus)
    def nvmlDeviceGetHandleByIndex(self, i): return i
    def nvmlDeviceGetName(self, h): return self._val(h, "name")
    def nvmlDeviceGetUUID(self, h): return self._val(h, "uuid")
    def nvmlDeviceGetMemoryInfo(self, h): return SimpleNamespace(**self._val(h, "memory"))
    def nvmlDeviceGetUtilizationRates(self, h): return SimpleNamespace(**self._val(h, "utilization"))
    def nvmlDeviceGetEncoderUtilization(self, h): return self._val(h, "encoder")
    def nvmlDeviceGetDecoderUtilization(self, h): return self._val(h, "decoder")
    def nvmlDeviceGetTemperature(self, h, sensor): return self._val(h, "temperature")
    def nvmlDeviceGetPowerUsage(self, h): return self._val(h, "power_mw")
    def nvmlDeviceGetEnforcedPowerLimit(self, h): return self._val(h, "power_limit_mw")
    def nvmlDeviceGetFanSpeed(self, h): return self._val(h, "fan")
    def nvmlDeviceGetPerformanceState(self, h): return self._val(h, "pstate")
    def nvmlDeviceGetComputeMode(self, h): return self._val(h, "compute_mode")
    def nvmlDeviceGetCurrPcieLinkGeneration(self, h): return self._val(h, "pcie_gen")
    def nvmlDeviceGetCurrPcieLinkWidth(self, h): return self._val(h, "pcie_width")
    def nvmlDeviceGetCurrentClocksEventReasons(self, h): return self._val(h, "event_reasons")

    def nvmlDeviceGetTotalEccErrors(self, h, kind, counter):
        return self._val(h, "ecc")["corrected" if kind == pynvml.NVML_MEMORY_ERROR_TYPE_CORRECTED else "uncorrected"]

    def nvmlDeviceGetClockInfo(self, h, c): return self._val(h, "clocks")[_CLOCKS[c]]
    def nvmlDeviceGetMaxClockInfo(self, h, c): return self._val(h, "max_clocks")[_CLOCKS[c]]

    def nvmlDeviceGetComputeRunningProcesses(self, h):
        return [SimpleNamespace(pid=p["pid"], usedGpuMemory=p["usedGpuMemory"]) for p in self._val(h, "processes")]

    def nvmlSystemGetProcessName(self, pid):
        return next(p["name"] for g in self.gpus for p in g["processes"] if p["pid"] == pid)


_CLOCKS = {pynvml.NVML_CLOCK_GRAPHICS: "graphics", pynvml.NVML_CLOCK_SM: "sm", pynvml.NVML_CLOCK_MEM: "memory",
           pynvml.NVML_CLOCK_VIDEO: "video"}


def test_nvml_mapping_with_a_fake_nvml():
    fake = FakeNVML(TESTDATA / "nvml-a100-sxm4.json")
    col = NvidiaSmiCollector(NvidiaSmiConfig(type="nvidia_smi"), log=LOG, nvml=fake)
    points = col.collect(10)
    gpu0, proc, gpu1 = points
    assert gpu0.tags == {"index": "0", "name": "NVIDIA A100-SXM4-40GB", "uuid": "GPU-2c1a7f43-6c1d-5a0e-9b54-0d1e4c7f8a21",
                         "pstate": "P0", "compute_mode": "Default"}
    f = gpu0.fields
    assert (f["memory_total"], f["memory_used"], f["memory_free"]) == (40960, 6528, 34432)
    assert (f["utilization_gpu"], f["utilization_memory"], f["temperature_gpu"]) == (87, 41, 61)
    assert (f["power_draw"], f["power_limit"]) == (243.117, 400.0)
    assert (f["clocks_current_sm"], f["clocks_max_memory"], f["pcie_link_gen_current"]) == (1410, 1215, 4)
    assert (f["clocks_event_reasons"], f["clocks_event_sw_power_cap"], f["clocks_event_gpu_idle"]) == (4, 1, 0)
    assert f["driver_version"] == "535.104.05" and "fan_speed" not in f  # not supported: left out
    assert (proc.measurement, proc.tags["process_name"], proc.fields) == ("nvidia_smi_process", "tritonserver",
                                                                          {"used_memory": 6144})
    assert gpu1.tags["compute_mode"] == "Exclusive_Process" and gpu1.fields["ecc_errors_corrected_volatile"] == 2
    for p in points:
        validate(p)
    spec_fields = set(col.describe()[0].fields)
    assert set(f) <= spec_fields


def test_nvml_read_and_map_are_separate():
    fake = FakeNVML(TESTDATA / "nvml-a100-sxm4.json")
    readings = read_gpu(fake, 1)
    assert readings["power_mw"] == 52034 and "fan" not in readings
    (p,) = gpu_points(1, readings, 3)
    assert p.fields["power_draw"] == 52.034 and p.fields["clocks_event_gpu_idle"] == 1


def test_no_gpu_logs_one_line_and_reports_nothing(caplog):
    col = NvidiaSmiCollector(NvidiaSmiConfig(type="nvidia_smi"), log=logging.getLogger("nv"))
    with caplog.at_level(logging.INFO, logger="nv"):
        assert col.collect(1) == [] and col.collect(2) == []
    assert len([r for r in caplog.records if "no NVIDIA GPU" in r.message]) == 1


# -- RunningCollector ------------------------------------------------------------------------


class SlowPlugin:
    def __init__(self, config, *, log):
        self.release = threading.Event()

    def collect(self, now_ns):
        self.release.wait(10)
        return []

    def describe(self):
        return []


@pytest.mark.timeout(30)
def test_timeout_is_counted_and_a_busy_collector_is_skipped():
    from datetime import timedelta

    rc = RunningCollector(MemConfig(type="mem", timeout=timedelta(milliseconds=100)), factory=SlowPlugin)
    assert rc.gather(1) == [] and rc.stats.timeouts == 1
    assert rc.gather(2) == [] and rc.stats.skipped == 1
    rc._plugin.release.set()
    rc.close()
    (p,) = rc.self_points(3)
    assert (p.measurement, p.tags, p.fields["timeouts_total"]) == (
        "mlpulse_collector", {"collector": "mem", "instance": "mem"}, 1)


def broken(config, *, log):
    raise OSError("device busy")


def test_startup_failure_policies():
    with pytest.raises(RuntimeError, match="failed to start: device busy"):
        RunningCollector(MemConfig(type="mem", on_error="fail"), factory=broken).start()
    ignored = RunningCollector(MemConfig(type="mem", on_error="ignore"), factory=broken)
    assert ignored.gather(1) == [] and ignored.gather(2) == [] and ignored.stats.errors == 1
    calls = []

    def flaky(config, *, log):
        calls.append(1)
        if len(calls) == 1:
            raise OSError("not yet")
        return MemCollector(config, log=log)

    retried = RunningCollector(MemConfig(type="mem", on_error="retry"), factory=flaky)
    assert retried.gather(1) == [] and len(retried.gather(2)) == 1 and len(calls) == 2


def test_tags_and_field_filters_applied_by_the_runner():
    cfg = MemConfig(type="mem", name="mem-a", tags={"rack": "r1"}, include_fields=["*_percent"],
                    exclude_fields=["available_*"])
    (p,) = RunningCollector(cfg, global_tags={"host": "h1"}).gather(9)
    assert p.tags == {"host": "h1", "rack": "r1"} and set(p.fields) == {"used_percent"}


def test_unknown_collector_lists_known_names():
    with pytest.raises(LookupError, match="known collectors: cpu, disk, diskio, mem, net, nvidia_smi, prometheus"):
        load_collector_class("gpu")
    assert load_collector_class("prometheus").__name__ == "PrometheusCollector"
    assert PrometheusConfig(type="prometheus", urls=["http://x"]).interval.total_seconds() == 10
