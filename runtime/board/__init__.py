"""Emulated boards: an aarch64 Debian userland run under qemu-user behind a real OpenSSH sshd."""
