"""What an emulated board of each target reports about itself: /proc/cpuinfo, device-tree model,
Jetson release file. Values are those of the real boards (CPU part numbers match targets/*.toml)."""

from __future__ import annotations

from dataclasses import dataclass

from edgefit.errors import UserError


@dataclass(frozen=True)
class Profile:
    cpu_part: str  # MIDR part number as /proc/cpuinfo prints it
    cpu_variant: str
    cpu_revision: int
    features: str
    cores: int
    model: str  # /proc/device-tree/model (NUL-terminated on the real board)
    hardware: str = ""  # the Pi's "Hardware"/"Revision"/"Model" trailer of /proc/cpuinfo
    revision: str = ""
    tegra_release: str = ""  # /etc/nv_tegra_release on Jetson

    def cpuinfo(self) -> str:
        blocks = [
            f"processor\t: {i}\nBogoMIPS\t: 108.00\nFeatures\t: {self.features}\n"
            f"CPU implementer\t: 0x41\nCPU architecture: 8\nCPU variant\t: {self.cpu_variant}\n"
            f"CPU part\t: {self.cpu_part}\nCPU revision\t: {self.cpu_revision}\n"
            for i in range(self.cores)
        ]
        text = "\n".join(blocks)
        if self.hardware:
            text += (
                f"\nHardware\t: {self.hardware}\nRevision\t: {self.revision}\n"
                f"Serial\t\t: 10000000edfe0001\nModel\t\t: {self.model}\n"
            )
        return text


_PI_FEATURES = "fp asimd evtstrm crc32 cpuid"
_A76_FEATURES = (
    "fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm lrcpc dcpop asimddp"
)

PROFILES: dict[str, Profile] = {
    "rpi3": Profile("0xd03", "0x0", 4, _PI_FEATURES, 4, "Raspberry Pi 3 Model B Plus Rev 1.3", "BCM2835", "a020d3"),
    "rpi4": Profile("0xd08", "0x0", 3, _PI_FEATURES, 4, "Raspberry Pi 4 Model B Rev 1.4", "BCM2835", "c03114"),
    "rpi5": Profile("0xd0b", "0x4", 1, _A76_FEATURES, 4, "Raspberry Pi 5 Model B Rev 1.0", "BCM2835", "d04170"),
    "jetson-nano": Profile(
        "0xd07", "0x1", 1, "fp asimd evtstrm aes pmull sha1 sha2 crc32 cpuid", 4,
        "NVIDIA Jetson Nano Developer Kit",
        tegra_release="# R32 (release), REVISION: 7.1, GCID: 29818004, BOARD: t210ref, EABI: aarch64, "
        "DATE: Sat Feb 19 17:05:08 UTC 2022",
    ),
    "jetson-orin-nano": Profile(
        "0xd42", "0x0", 1, _A76_FEATURES + " uscat ilrcpc flagm", 6,
        "NVIDIA Jetson Orin Nano Engineering Reference Developer Kit",
        tegra_release="# R36 (release), REVISION: 4.0, GCID: 37537400, BOARD: generic, EABI: aarch64, "
        "DATE: Fri Sep 13 04:36:44 UTC 2024",
    ),
}  # fmt: skip


def profile(target: str) -> Profile:
    if target not in PROFILES:
        raise UserError(f"no emulated board for target {target!r}; emulated: {', '.join(sorted(PROFILES))}")
    return PROFILES[target]
