"""``nvidia_smi``: per-GPU metrics read through NVML (``nvidia-ml-py``), named like Telegraf's
``nvidia_smi`` input; per-process GPU memory as ``nvidia_smi_process``.

Split per STYLE G3: :func:`read_gpu` does the NVML calls (each reading that the GPU or driver
does not support is left out), :func:`gpu_points` is a pure mapping from those readings to points.
The NVML module is injected (``nvml=``); tests pass a fake with recorded values.

Units follow Telegraf: memory in MiB, power in W, clocks in MHz, temperature in °C,
utilization and fan speed in percent. Tags: ``index``, ``name``, ``uuid``, ``pstate``,
``compute_mode``. Clock-event (throttle) reasons are the raw bitmask ``clocks_event_reasons`` plus
one 0/1 field per common reason. With no NVIDIA driver or GPU the collector logs one line and
reports nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from collector.base import MeasurementSpec
from tsdb.point import Point

MIB = 1024 * 1024
REASONS = {"gpu_idle": 0x1, "sw_power_cap": 0x4, "hw_slowdown": 0x8, "sw_thermal_slowdown": 0x20,
           "hw_thermal_slowdown": 0x40, "hw_power_brake_slowdown": 0x80}
COMPUTE_MODES = {0: "Default", 1: "Exclusive_Thread", 2: "Prohibited", 3: "Exclusive_Process"}
GPU_FIELDS = {
    "memory_total": "integer", "memory_used": "integer", "memory_free": "integer",
    "utilization_gpu": "integer", "utilization_memory": "integer", "utilization_encoder": "integer",
    "utilization_decoder": "integer", "temperature_gpu": "integer", "power_draw": "float",
    "power_limit": "float", "fan_speed": "integer", "clocks_current_graphics": "integer",
    "clocks_current_sm": "integer", "clocks_current_memory": "integer", "clocks_current_video": "integer",
    "clocks_max_graphics": "integer", "clocks_max_sm": "integer", "clocks_max_memory": "integer",
    "pcie_link_gen_current": "integer", "pcie_link_width_current": "integer",
    "clocks_event_reasons": "integer", "ecc_errors_corrected_volatile": "integer",
    "ecc_errors_uncorrected_volatile": "integer", "driver_version": "string",
    **{f"clocks_event_{r}": "integer" for r in REASONS},
}


def _text(v: Any) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


def _reading(nvml: Any, out: dict, key: str, fn: Callable[[], Any]) -> None:
    """Store ``fn()`` under ``key`` unless NVML says the reading is not supported/available."""
    try:
        out[key] = fn()
    except nvml.NVMLError:
        pass


def read_gpu(nvml: Any, handle: Any) -> dict[str, Any]:
    """Raw NVML readings of one GPU (NVML's units), leaving out what the device does not support."""
    n, h, r = nvml, handle, {}
    calls = {
        "name": lambda: _text(n.nvmlDeviceGetName(h)), "uuid": lambda: _text(n.nvmlDeviceGetUUID(h)),
        "memory": lambda: n.nvmlDeviceGetMemoryInfo(h), "utilization": lambda: n.nvmlDeviceGetUtilizationRates(h),
        "encoder": lambda: n.nvmlDeviceGetEncoderUtilization(h)[0],
        "decoder": lambda: n.nvmlDeviceGetDecoderUtilization(h)[0],
        "temperature": lambda: n.nvmlDeviceGetTemperature(h, n.NVML_TEMPERATURE_GPU),
        "power_mw": lambda: n.nvmlDeviceGetPowerUsage(h), "power_limit_mw": lambda: n.nvmlDeviceGetEnforcedPowerLimit(h),
        "fan": lambda: n.nvmlDeviceGetFanSpeed(h), "pstate": lambda: n.nvmlDeviceGetPerformanceState(h),
        "compute_mode": lambda: n.nvmlDeviceGetComputeMode(h),
        "pcie_gen": lambda: n.nvmlDeviceGetCurrPcieLinkGeneration(h),
        "pcie_width": lambda: n.nvmlDeviceGetCurrPcieLinkWidth(h),
        "event_reasons": lambda: n.nvmlDeviceGetCurrentClocksEventReasons(h),
        "ecc_corrected": lambda: n.nvmlDeviceGetTotalEccErrors(h, n.NVML_MEMORY_ERROR_TYPE_CORRECTED, n.NVML_VOLATILE_ECC),
        "ecc_uncorrected": lambda: n.nvmlDeviceGetTotalEccErrors(h, n.NVML_MEMORY_ERROR_TYPE_UNCORRECTED, n.NVML_VOLATILE_ECC),
        "processes": lambda: list(n.nvmlDeviceGetComputeRunningProcesses(h)),
    }
    for key, fn in calls.items():
        _reading(nvml, r, key, fn)
    for kind, const in (("graphics", "NVML_CLOCK_GRAPHICS"), ("sm", "NVML_CLOCK_SM"), ("memory", "NVML_CLOCK_MEM"),
                        ("video", "NVML_CLOCK_VIDEO")):
        _reading(nvml, r, f"clock_{kind}", lambda c=const: n.nvmlDeviceGetClockInfo(h, getattr(n, c)))
        _reading(nvml, r, f"clock_max_{kind}", lambda c=const: n.nvmlDeviceGetMaxClockInfo(h, getattr(n, c)))
    return r


def _gpu_fields(r: dict[str, Any]) -> dict[str, Any]:
    f: dict[str, Any] = {}
    if "memory" in r:
        mem = r["memory"]
        f.update(memory_total=int(mem.total) // MIB, memory_used=int(mem.used) // MIB, memory_free=int(mem.free) // MIB)
    if "utilization" in r:
        f.update(utilization_gpu=int(r["utilization"].gpu), utilization_memory=int(r["utilization"].memory))
    simple = {"encoder": "utilization_encoder", "decoder": "utilization_decoder", "temperature": "temperature_gpu",
              "fan": "fan_speed", "pcie_gen": "pcie_link_gen_current", "pcie_width": "pcie_link_width_current",
              "ecc_corrected": "ecc_errors_corrected_volatile", "ecc_uncorrected": "ecc_errors_uncorrected_volatile",
              "clock_graphics": "clocks_current_graphics", "clock_sm": "clocks_current_sm",
              "clock_memory": "clocks_current_memory", "clock_video": "clocks_current_video",
              "clock_max_graphics": "clocks_max_graphics", "clock_max_sm": "clocks_max_sm",
              "clock_max_memory": "clocks_max_memory"}
    f.update({out: int(r[key]) for key, out in simple.items() if key in r})
    if "power_mw" in r:
        f["power_draw"] = r["power_mw"] / 1000.0
    if "power_limit_mw" in r:
        f["power_limit"] = r["power_limit_mw"] / 1000.0
    if "event_reasons" in r:
        mask = int(r["event_reasons"])
        f["clocks_event_reasons"] = mask
        f.update({f"clocks_event_{name}": int(bool(mask & bit)) for name, bit in REASONS.items()})
    return f


def _gpu_tags(index: int, r: dict[str, Any]) -> dict[str, str]:
    tags = {"index": str(index), "name": r.get("name"), "uuid": r.get("uuid")}
    if "pstate" in r:
        tags["pstate"] = f"P{int(r['pstate'])}"
    if "compute_mode" in r:
        tags["compute_mode"] = COMPUTE_MODES.get(int(r["compute_mode"]), str(r["compute_mode"]))
    return {k: v for k, v in tags.items() if v}


def gpu_points(index: int, readings: dict[str, Any], now_ns: int, *, driver_version: str | None = None,
               process_names: dict[int, str] | None = None) -> list[Point]:
    """``nvidia_smi`` (and ``nvidia_smi_process``) points from :func:`read_gpu`'s readings."""
    tags = _gpu_tags(index, readings)
    fields = _gpu_fields(readings)
    if driver_version:
        fields["driver_version"] = driver_version
    points = [Point("nvidia_smi", tags, fields, now_ns)] if fields else []
    for proc in readings.get("processes", []):
        used = getattr(proc, "usedGpuMemory", None)
        if used is None:  # not available (e.g. no permission, MIG)
            continue
        ptags = {"index": tags["index"], "pid": str(proc.pid), **({"uuid": tags["uuid"]} if "uuid" in tags else {})}
        name = (process_names or {}).get(proc.pid)
        if name:
            ptags["process_name"] = name
        points.append(Point("nvidia_smi_process", ptags, {"used_memory": int(used) // MIB}, now_ns))
    return points


class NvidiaSmiCollector:
    def __init__(self, config: Any, *, log: Any = None, nvml: Any = None):
        self.config, self.log = config, log
        self._nvml, self._ready, self._unavailable = nvml, False, False

    def _init(self) -> bool:
        if self._ready or self._unavailable:
            return self._ready
        try:
            if self._nvml is None:
                import pynvml

                self._nvml = pynvml
            self._nvml.nvmlInit()
            self._ready = True
        except Exception as e:  # no driver, no library, no GPU: a normal state on CPU machines
            self._unavailable = True
            self.log.info("no NVIDIA GPU/driver found (%s: %s); nvidia_smi reports nothing", type(e).__name__, e)
        return self._ready

    def collect(self, now_ns: int) -> list[Point]:
        if not self._init():
            return []
        n = self._nvml
        driver = None
        try:
            driver = _text(n.nvmlSystemGetDriverVersion())
        except n.NVMLError:
            pass
        points = []
        for i in range(n.nvmlDeviceGetCount()):
            points += self._one(i, now_ns, driver)
        return points

    def _one(self, index: int, now_ns: int, driver: str | None) -> list[Point]:
        n = self._nvml
        try:
            readings = read_gpu(n, n.nvmlDeviceGetHandleByIndex(index))
        except n.NVMLError as e:
            self.log.warning("GPU %d unreadable: %s", index, e)
            return []
        if self.config.processes == "exclude":
            readings.pop("processes", None)
        names = {p.pid: self._process_name(p.pid) for p in readings.get("processes", [])}
        return gpu_points(index, readings, now_ns, driver_version=driver, process_names=names)

    def _process_name(self, pid: int) -> str | None:
        try:
            return _text(self._nvml.nvmlSystemGetProcessName(pid)) or None
        except self._nvml.NVMLError:
            return None

    def describe(self) -> Iterable[MeasurementSpec]:
        return [MeasurementSpec("nvidia_smi", GPU_FIELDS, ("index", "name", "uuid", "pstate", "compute_mode")),
                MeasurementSpec("nvidia_smi_process", {"used_memory": "integer"}, ("index", "uuid", "pid", "process_name"))]

    def close(self) -> None:
        if self._ready:
            try:
                self._nvml.nvmlShutdown()
            except Exception:
                pass
            self._ready = False
