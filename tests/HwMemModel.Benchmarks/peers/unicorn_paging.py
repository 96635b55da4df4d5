#!/usr/bin/python3
"""Peer benchmark for HwMemModel's MMU figures: guest loads in Unicorn (QEMU TCG softmmu) with x86-64 4-level
paging enabled.  See README.md beside this file.

Run with Debian's interpreter after `apt-get install -y python3-unicorn`:

    /usr/bin/python3 tests/HwMemModel.Benchmarks/peers/unicorn_paging.py [--quick] [--disasm]

What is timed (wall clock, time.perf_counter_ns around one uc.emu_start per loop, median of REPS repetitions):

  A  baseline      loop: add rdx,1 ; dec rcx ; jnz loop
  B  TLB-hit load  loop: mov rax,[rbx] ; add rdx,rax ; dec rcx ; jnz loop        (rbx fixed)
     -> tlb_hit_load_ns = (B - A) / ITER

  A2 baseline      loop: add rdx,rax ; add rsi,r8 ; and rsi,r9 ; dec rcx ; jnz loop
  B2 hit, shape 2  loop: mov rax,[rbx+rsi] ; <A2>   with r8 = 0 (always the same page)
  A2w              A2 with ITER_WALK iterations
  C1 walk          <B2> with r8 = 4 KiB, r9 = 4 MiB - 1: 1024 consecutive pages (one page table), as in
                   MmuBenchmarks.ColdWalk4Level -> walk_load_ns = (C1 - A2w) / ITER_WALK, reported only if every
                   C1 load is shown to miss the TLB (see the Accessed-bit check below)
  C2 cross-check   <B2> with r8 = 16 GiB, r9 = 512 GiB - 1: 32 pages 16 GiB apart, one TLB set for any size
  C3 cross-check   <B2> with r8 = 1 MiB, r9 = 32 MiB - 1: 32 pages 1 MiB apart in low RAM, one TLB set while
                   the table has 256 entries

Caveats (how the page-walk figure is isolated, and what it contains):
  * Unicorn 2.0.x walks the guest page tables on a TLB miss (permissions checked, #PF raised, Accessed bits set:
    all verified below) but then installs the TLB entry with physical address = virtual address (Unicorn
    identity-maps guest-virtual to guest-physical; real translation arrived in Unicorn 2.1 with its "TLB mode"
    control).  So the walk's cost is paid in full but its output address is discarded.  This script therefore
    maps every page it loads from at VA == PA (the tables still describe that mapping and are walked), and its
    remap check reports which physical page a non-identity mapping actually reaches.
  * QEMU's softmmu TLB is a direct-mapped table indexed by (vaddr >> 12) & (size - 1) plus an 8-entry fully
    associative victim TLB.  The table starts at 256 entries and is resized (64 .. 2^22 entries) only when it is
    flushed, according to the use rate seen since the previous flush.  This script never flushes after setup,
    so the table keeps 256 entries and C1's 1024 consecutive pages (each index used 4 times) miss every time;
    after a flush had grown the table to >= 1024 entries they would hit.  Hence the check: after the timed runs
    the A bits of each loop's level-1 PTEs are cleared behind QEMU's back (a physical write, no TLB flush) and
    the loop runs once more over its pages; a page whose A bit comes back was walked, i.e. missed the TLB.
    walk_load_ns is reported only if all 1024 C1 pages were walked; B's page must stay clear (hits do not walk).
  * A miss costs: the inline TLB compare, the victim-TLB search (8 entries), tlb_fill -> the x86 walker (4
    guest-physical 8-byte reads of PML4E/PDPTE/PDE/PTE through QEMU's address-space lookup, A bits written if
    clear) -> tlb_set_page (physical section lookup, eviction of the old entry to the victim TLB), then the load.
    Not a bare walk: the peer of our ColdWalk4Level (a walk that builds a translation) plus a load.  QEMU has no
    paging-structure caches, so every miss walks all four levels whatever the address layout.
  * Cross-checks.  C2's pages are 2^22 pages apart, so they share one TLB index whatever the table size, and 32
    of them cycle through 1 main slot + 8 victim slots: a miss every time, immune to resizing.  But with VA == PA
    they are 32 separate 4 KiB RAM regions between 256 GiB and 752 GiB (32 pages, not 1024: the default CPU model
    has MAXPHYADDR 40), and they cost more per miss than C1.  C3 has C2's conflict pattern inside the low RAM
    region; if C3 ~= C1 < C2, the surplus of C2 comes from QEMU's/Unicorn's lookup of those high, separate
    physical regions, not from the walk pattern.
  * INVLPG per iteration (D - D0 below, for information only) isolates a walk worse: QEMU ends the translation
    block after INVLPG, so every iteration leaves the generated code for the execution loop, which dwarfs and
    blurs the walk; D - D0 also includes tlb_flush_page's extra work on a present entry.
  * Every figure is a difference of two wall-clock loop times of a JIT: a whole guest instruction (decode is
    amortised, but the inline TLB compare and the host load are in), not a single MMU call as in HwMemModel.
"""

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

from unicorn import Uc, UcError, UC_ARCH_X86, UC_MODE_64, __version__ as UC_PY_VERSION, uc_version
from unicorn.unicorn_const import UC_ERR_EXCEPTION
from unicorn.x86_const import (
    UC_X86_REG_CR0, UC_X86_REG_CR3, UC_X86_REG_CR4, UC_X86_REG_MSR,
    UC_X86_REG_RAX, UC_X86_REG_RBX, UC_X86_REG_RCX, UC_X86_REG_RDX, UC_X86_REG_RSI, UC_X86_REG_RDI,
    UC_X86_REG_R8, UC_X86_REG_R9,
)

QUICK = "--quick" in sys.argv
ITER = 2_000_000 if QUICK else 20_000_000        # A, B, A2, B2
ITER_WALK = 200_000 if QUICK else 2_000_000      # C1, C2, A2w (each C iteration is a TLB miss)
ITER_INVLPG = 100_000 if QUICK else 1_000_000    # D, D0 (each iteration leaves the generated code)
REPS = 3 if QUICK else 11

# ---------------------------------------------------------------------------------------------------------------
# Layout.  Unicorn's mem_map maps guest-physical RAM.  Pages that are loaded from are mapped VA == PA (see the
# first caveat above); only the remap check maps a page elsewhere.
RAM_SIZE = 128 << 20
VA_CODE = 0x0040_3000                  # code page (identity)
VA_MARK = 0x0030_0000                  # remap check: PTE -> PA_MARK, a different physical page
PA_MARK = 0x0030_1000
VA_NOTPRESENT = 0x0030_2000            # PTE with the present bit clear
PA_TABLES = 0x0100_0000                # page-table pool, 16 MiB .. 32 MiB
PA_TABLES_END = 0x0200_0000
VA_HOT = 0x0200_0000                   # 1024 consecutive data pages, as in MmuBenchmarks (4 MiB)
NPAGES = 1024
COLD_STRIDE = 1 << 34                  # 16 GiB = 2^22 pages: the same direct-mapped TLB index for every size
NCOLD = 32                             # > 1 main + 8 victim entries; 32 * 16 GiB = 512 GiB
VA_COLD = 0x40_0000_0000 + 0x1F5 * 0x1000   # 256 GiB + index 0x1F5 (0x35 mod 64); top page at 752 GiB < 2^40
VA_LOWSET = 0x0400_0000 + 0x1F5 * 0x1000      # C3: 32 pages 1 MiB apart, 64 MiB .. 96 MiB
LOWSET_STRIDE = 0x10_0000
VA_UNMAPPED = 0x0000_6000_0000_0000    # no PML4 entry (INVLPG reference address)

P, RW, A = 1 << 0, 1 << 1, 1 << 5
ADDR_MASK = 0x000F_FFFF_FFFF_F000

CR0_PE, CR0_ET, CR0_PG = 1 << 0, 1 << 4, 1 << 31
CR4_PAE = 1 << 5
MSR_EFER = 0xC000_0080
EFER_LME, EFER_LMA = 1 << 8, 1 << 10


class PageTables:
    """4-level IA-32e page tables with 4 KiB pages, built in guest RAM.  Entries are written without the
    Accessed bit so the checks can see the walker set it."""

    def __init__(self, uc):
        self.uc = uc
        self.next = PA_TABLES
        self.root = self._alloc()

    def _alloc(self):
        pa = self.next
        self.next += 0x1000
        assert self.next <= PA_TABLES_END, "page-table pool exhausted"
        self.uc.mem_write(pa, bytes(0x1000))
        return pa

    def entry_addrs(self, va):
        """Physical addresses of the PML4E, PDPTE, PDE and PTE that map va (they must exist)."""
        out, table = [], self.root
        for shift in (39, 30, 21, 12):
            e_pa = table + ((va >> shift) & 0x1FF) * 8
            out.append(e_pa)
            table = rd64(self.uc, e_pa) & ADDR_MASK
        return out

    def map(self, va, pa, flags=P | RW):
        table = self.root
        for shift in (39, 30, 21):
            e_pa = table + ((va >> shift) & 0x1FF) * 8
            e = rd64(self.uc, e_pa)
            if not e & P:
                e = self._alloc() | P | RW
                wr64(self.uc, e_pa, e)
            table = e & ADDR_MASK
        wr64(self.uc, table + ((va >> 12) & 0x1FF) * 8, (pa & ADDR_MASK) | flags)


def rd64(uc, pa):
    return int.from_bytes(uc.mem_read(pa, 8), "little")


def wr64(uc, pa, v):
    uc.mem_write(pa, v.to_bytes(8, "little"))


# ---------------------------------------------------------------------------------------------------------------
# Guest code, hand-encoded; each loop at its own offset in the code page, `until` = the address after its jnz.
# Checked with `objdump -D -b binary -mi386:x86-64` (run the script with --disasm to print that listing).
ADD_RDX_1 = bytes.fromhex("4883c201")          # 48 83 C2 01  add rdx, 1         REX.W 83 /0 ib, rm=rdx
DEC_RCX = bytes.fromhex("48ffc9")              # 48 FF C9     dec rcx            REX.W FF /1, rm=rcx
MOV_RAX_MRBX = bytes.fromhex("488b03")         # 48 8B 03     mov rax, [rbx]     REX.W 8B /r, mod=00 reg=rax rm=rbx
ADD_RDX_RAX = bytes.fromhex("4801c2")          # 48 01 C2     add rdx, rax       REX.W 01 /r, reg=rax rm=rdx
MOV_RAX_MRBXRSI = bytes.fromhex("488b0433")    # 48 8B 04 33  mov rax, [rbx+rsi] modrm rm=100 -> SIB 33: base rbx, index rsi, scale 1
ADD_RSI_R8 = bytes.fromhex("4c01c6")           # 4C 01 C6     add rsi, r8        REX.WR 01 /r, reg=r8 rm=rsi
AND_RSI_R9 = bytes.fromhex("4c21ce")           # 4C 21 CE     and rsi, r9        REX.WR 21 /r, reg=r9 rm=rsi
INVLPG_MRBX = bytes.fromhex("0f013b")          # 0F 01 3B     invlpg [rbx]       0F 01 /7, mod=00 rm=rbx
INVLPG_MRDI = bytes.fromhex("0f013f")          # 0F 01 3F     invlpg [rdi]       0F 01 /7, mod=00 rm=rdi
HLT = b"\xf4"                                  # F4           hlt (after each program; never executed)


def loop(*body):
    """The loop body followed by `jnz rel8` back to its first instruction (75 cb)."""
    code = b"".join(body)
    rel = -(len(code) + 2)
    assert -128 <= rel < 0
    return code + bytes([0x75, rel & 0xFF])


PROGRAMS = {  # name -> (offset in the code page, bytes)
    "A":  (0x000, loop(ADD_RDX_1, DEC_RCX)),
    "B":  (0x040, loop(MOV_RAX_MRBX, ADD_RDX_RAX, DEC_RCX)),
    "A2": (0x080, loop(ADD_RDX_RAX, ADD_RSI_R8, AND_RSI_R9, DEC_RCX)),
    "B2": (0x0C0, loop(MOV_RAX_MRBXRSI, ADD_RDX_RAX, ADD_RSI_R8, AND_RSI_R9, DEC_RCX)),   # also C1, C2
    "D0": (0x100, loop(MOV_RAX_MRBX, ADD_RDX_RAX, INVLPG_MRDI, DEC_RCX)),
    "D":  (0x140, loop(MOV_RAX_MRBX, ADD_RDX_RAX, INVLPG_MRBX, DEC_RCX)),
    "LD": (0x180, MOV_RAX_MRBX),                                                         # one load, for checks
}


def build():
    uc = Uc(UC_ARCH_X86, UC_MODE_64)
    uc.mem_map(0, RAM_SIZE)
    pt = PageTables(uc)

    page = bytearray(0x1000)
    for off, code in PROGRAMS.values():
        page[off:off + len(code) + 1] = code + HLT
    uc.mem_write(VA_CODE, bytes(page))
    pt.map(VA_CODE, VA_CODE)

    for i in range(NPAGES):
        va = VA_HOT + i * 0x1000
        pt.map(va, va)
        wr64(uc, va, i + 1)
    for k in range(NCOLD):
        va = VA_COLD + k * COLD_STRIDE
        uc.mem_map(va, 0x1000)
        pt.map(va, va)
        wr64(uc, va, 0x10000 + k)
        va = VA_LOWSET + k * LOWSET_STRIDE
        pt.map(va, va)
        wr64(uc, va, 0x20000 + k)
    pt.map(VA_MARK, PA_MARK)
    pt.map(VA_NOTPRESENT, VA_NOTPRESENT, flags=RW)      # present bit clear
    pa = PA_TABLES
    while pa < pt.next:                                 # the tables themselves, read-only (pt.next grows here)
        pt.map(pa, pa, flags=P)
        pa += 0x1000

    # Enter IA-32e paging: CR3, CR4.PAE, EFER.LME, then CR0.PG.  (Unicorn's UC_MODE_64 starts with CR0.PE and
    # EFER.LME|LMA set but paging off; QEMU sets EFER.LMA itself when PG turns on with LME.)
    uc.reg_write(UC_X86_REG_CR3, pt.root)
    uc.reg_write(UC_X86_REG_CR4, uc.reg_read(UC_X86_REG_CR4) | CR4_PAE)
    uc.reg_write(UC_X86_REG_MSR, (MSR_EFER, uc.reg_read(UC_X86_REG_MSR, MSR_EFER) | EFER_LME))
    uc.reg_write(UC_X86_REG_CR0, uc.reg_read(UC_X86_REG_CR0) | CR0_PE | CR0_ET | CR0_PG)
    return uc, pt


def run(uc, name, regs):
    off, code = PROGRAMS[name]
    for reg, value in regs.items():
        uc.reg_write(reg, value)
    t0 = time.perf_counter_ns()
    uc.emu_start(VA_CODE + off, VA_CODE + off + len(code))
    return time.perf_counter_ns() - t0


def checks(uc, pt):
    """Verify that paging is on and that loads walk our tables.  Returns {check: bool}."""
    res = {}
    cr0, cr4 = uc.reg_read(UC_X86_REG_CR0), uc.reg_read(UC_X86_REG_CR4)
    efer, cr3 = uc.reg_read(UC_X86_REG_MSR, MSR_EFER), uc.reg_read(UC_X86_REG_CR3)
    res["ia32e_paging_on"] = bool(cr0 & CR0_PG and cr0 & CR0_PE and cr4 & CR4_PAE and efer & EFER_LMA
                                  and efer & EFER_LME and cr3 == pt.root)
    print(f"  control registers: CR0={cr0:#x} CR3={cr3:#x} CR4={cr4:#x} EFER={efer:#x} -> "
          f"{'IA-32e paging on' if res['ia32e_paging_on'] else 'NOT in IA-32e paging'}")

    # 1. Accessed bits: the first load through VA_MARK walks all four levels and sets A in each entry.
    marker, other = 0x1122_3344_5566_7788, 0x0BAD_0BAD_0BAD_0BAD
    wr64(uc, PA_MARK + 0x18, marker)      # the physical page the PTE names
    wr64(uc, VA_MARK + 0x18, other)       # the physical page at the virtual address (identity)
    ents = pt.entry_addrs(VA_MARK)
    before = [int(bool(rd64(uc, e) & A)) for e in ents]
    run(uc, "LD", {UC_X86_REG_RBX: VA_MARK + 0x18, UC_X86_REG_RAX: 0})
    got = uc.reg_read(UC_X86_REG_RAX)
    after = [int(bool(rd64(uc, e) & A)) for e in ents]
    res["walk_sets_accessed_bits"] = before == [0, 0, 0, 0] and after == [1, 1, 1, 1]
    print(f"  Accessed bits of PML4E/PDPTE/PDE/PTE for {VA_MARK:#x}: before {before}, after one load {after} "
          f"-> {'walked' if res['walk_sets_accessed_bits'] else 'FAIL'}")

    # 2. Remap: VA_MARK's PTE names PA_MARK (a different page).  Real translation returns the marker.
    translated = got == marker
    print(f"  remap: PTE maps VA {VA_MARK:#x} -> PA {PA_MARK:#x}; load [VA+0x18] -> {got:#x} = "
          + ("the marker at the PTE's physical page: translation output used" if translated else
             f"{'the value at PA == VA' if got == other else 'neither page'}: the walk's output address is "
             "DISCARDED (Unicorn 2.0.x identity-maps VA to PA after walking)"))
    res_info = {"translation_output_used": translated}

    # 3. A not-present PTE faults (#PF, unhandled -> UC_ERR_EXCEPTION): the walk's verdict is honoured.
    try:
        run(uc, "LD", {UC_X86_REG_RBX: VA_NOTPRESENT})
        res["not_present_pte_faults"] = False
        print(f"  not-present PTE at {VA_NOTPRESENT:#x}: load succeeded -> FAIL")
    except UcError as e:
        res["not_present_pte_faults"] = e.errno == UC_ERR_EXCEPTION
        print(f"  not-present PTE at {VA_NOTPRESENT:#x}: load raised '{e}' -> "
              f"{'page fault' if res['not_present_pte_faults'] else 'FAIL'}")

    # 4. The TLB caches the walk: clearing the present bit without INVLPG is not seen; after INVLPG it faults.
    pte = ents[3]
    old = rd64(uc, pte)
    wr64(uc, pte, old & ~P)
    try:
        run(uc, "LD", {UC_X86_REG_RBX: VA_MARK + 0x18})
        stale_ok = True
    except UcError:
        stale_ok = False
    run(uc, "D0", {UC_X86_REG_RCX: 1, UC_X86_REG_RBX: VA_HOT, UC_X86_REG_RDI: VA_MARK})   # invlpg [VA_MARK]
    try:
        run(uc, "LD", {UC_X86_REG_RBX: VA_MARK + 0x18})
        fresh_faults = False
    except UcError as e:
        fresh_faults = e.errno == UC_ERR_EXCEPTION
    wr64(uc, pte, old)
    res["tlb_caches_until_invlpg"] = stale_ok and fresh_faults
    print(f"  PTE made not-present without a flush: load {'hits the cached entry' if stale_ok else 'faults'}; "
          f"after INVLPG: {'faults' if fresh_faults else 'does not fault'} -> "
          f"{'OK' if res['tlb_caches_until_invlpg'] else 'FAIL'}")
    return res, res_info


def main():
    major, minor, _ = uc_version()
    print(f"Unicorn {UC_PY_VERSION} (library {major}.{minor}), Python {sys.version.split()[0]} ({sys.executable})")
    if "--disasm" in sys.argv:
        with tempfile.TemporaryDirectory() as d:
            for name, (off, code) in PROGRAMS.items():
                path = os.path.join(d, name)
                with open(path, "wb") as f:
                    f.write(code)
                out = subprocess.run(["objdump", "-D", "-b", "binary", "-mi386:x86-64",
                                      f"--adjust-vma={VA_CODE + off:#x}", path],
                                     capture_output=True, text=True, check=True).stdout
                print(f"--- {name}")
                print("\n".join(l for l in out.splitlines() if l.startswith("  ")))

    t_start = time.perf_counter()
    uc, pt = build()
    print("Verification:")
    res, info = checks(uc, pt)

    hot_vas = [VA_HOT + i * 0x1000 for i in range(NPAGES)]
    cold_vas = [VA_COLD + k * COLD_STRIDE for k in range(NCOLD)]
    low_vas = [VA_LOWSET + k * LOWSET_STRIDE for k in range(NCOLD)]
    cases = {  # name -> (program, iterations, registers, expected rdx or None)
        "A":   ("A", ITER, {UC_X86_REG_RBX: VA_HOT}, lambda n: n),
        "B":   ("B", ITER, {UC_X86_REG_RBX: VA_HOT}, lambda n: n * 1),
        "A2":  ("A2", ITER, {UC_X86_REG_R8: 0, UC_X86_REG_R9: 0, UC_X86_REG_RAX: 1}, lambda n: n),
        "B2":  ("B2", ITER, {UC_X86_REG_RBX: VA_HOT, UC_X86_REG_R8: 0, UC_X86_REG_R9: 0}, lambda n: n * 1),
        "A2w": ("A2", ITER_WALK, {UC_X86_REG_R8: 0, UC_X86_REG_R9: 0, UC_X86_REG_RAX: 1}, lambda n: n),
        "C1":  ("B2", ITER_WALK, {UC_X86_REG_RBX: VA_HOT, UC_X86_REG_R8: 0x1000, UC_X86_REG_R9: NPAGES * 0x1000 - 1},
                lambda n: sum((i % NPAGES) + 1 for i in range(n))),
        "C2":  ("B2", ITER_WALK, {UC_X86_REG_RBX: VA_COLD, UC_X86_REG_R8: COLD_STRIDE,
                                  UC_X86_REG_R9: NCOLD * COLD_STRIDE - 1},
                lambda n: sum(0x10000 + (i % NCOLD) for i in range(n))),
        "C3":  ("B2", ITER_WALK, {UC_X86_REG_RBX: VA_LOWSET, UC_X86_REG_R8: LOWSET_STRIDE,
                                  UC_X86_REG_R9: NCOLD * LOWSET_STRIDE - 1},
                lambda n: sum(0x20000 + (i % NCOLD) for i in range(n))),
        "D0":  ("D0", ITER_INVLPG, {UC_X86_REG_RBX: VA_HOT, UC_X86_REG_RDI: VA_UNMAPPED}, lambda n: n),
        "D":   ("D", ITER_INVLPG, {UC_X86_REG_RBX: VA_HOT}, lambda n: n),
    }
    expected = {}

    def go(case, n=None):
        prog, iters, regs, expect = cases[case]
        n = iters if n is None else n
        if (case, n) not in expected:
            expected[(case, n)] = expect(n)
        regs = dict(regs)
        regs.update({UC_X86_REG_RCX: n, UC_X86_REG_RDX: 0, UC_X86_REG_RSI: 0})
        ns = run(uc, prog, regs)
        rcx, rdx = uc.reg_read(UC_X86_REG_RCX), uc.reg_read(UC_X86_REG_RDX)
        assert rcx == 0 and rdx == expected[(case, n)], (case, n, rcx, rdx, expected[(case, n)])
        return ns

    for case in cases:               # translate every loop once; warm the TLB and the host caches
        go(case, NPAGES * 2)
    times = {case: [] for case in cases}
    for _ in range(REPS):            # interleave the cases so that drift affects all of them alike
        for case in cases:
            times[case].append(go(case))
    med = {case: statistics.median(v) / cases[case][1] for case, v in times.items()}

    print("TLB behaviour of the timed loops (A bits of their level-1 PTEs cleared, loop re-run once over all "
          "its pages):")
    walked = {}
    for case, vas in (("B", hot_vas[:1]), ("C1", hot_vas), ("C2", cold_vas), ("C3", low_vas)):
        ptes = [pt.entry_addrs(va)[3] for va in vas]
        go(case, len(vas) * 2)       # warm: B's page may have been flushed by loop D
        for e in ptes:
            wr64(uc, e, rd64(uc, e) & ~A)
        go(case, len(vas) * 2)
        walked[case] = sum(1 for e in ptes if rd64(uc, e) & A)
        kind = ("no walk: TLB hits" if walked[case] == 0 else
                "every page walked: TLB misses" if walked[case] == len(vas) else "some pages walked")
        print(f"  {case}: {walked[case]} of {len(vas)} PTEs got A set again -> {kind}")
    res["B_hits_tlb"] = walked["B"] == 0
    misses = {"C1": walked["C1"] == NPAGES, "C2": walked["C2"] == NCOLD, "C3": walked["C3"] == NCOLD}
    res["C1_misses_tlb"] = misses["C1"]

    hit = med["B"] - med["A"]
    hit2 = med["B2"] - med["A2"]
    miss_ns = {c: (med[c] - med["A2w"]) if misses[c] else None for c in misses}
    walk = miss_ns["C1"]
    elapsed = time.perf_counter() - t_start

    nan = float("nan")
    rows = [
        ("A    add rdx,1; dec; jnz  (per iteration)", med["A"], ITER),
        ("B    mov rax,[rbx]; add; dec; jnz", med["B"], ITER),
        ("TLB-hit 8-byte load = B - A", hit, ITER),
        ("A2   add; add; and; dec; jnz", med["A2"], ITER),
        ("B2   mov rax,[rbx+rsi] + A2, one page", med["B2"], ITER),
        ("TLB-hit 8-byte load, shape 2 = B2 - A2", hit2, ITER),
        ("A2w  = A2, fewer iterations", med["A2w"], ITER_WALK),
        (f"C1   B2 over {NPAGES} consecutive pages", med["C1"], ITER_WALK),
        ("TLB-miss load (walk) = C1 - A2w" + ("" if misses["C1"] else ": NOT ISOLATED, C1 hit"),
         nan if walk is None else walk, ITER_WALK),
        (f"C2   B2 over {NCOLD} pages 16 GiB apart (high RAM)", med["C2"], ITER_WALK),
        ("cross-check: miss = C2 - A2w" + ("" if misses["C2"] else " (C2 hit: n/a)"),
         nan if miss_ns["C2"] is None else miss_ns["C2"], ITER_WALK),
        (f"C3   B2 over {NCOLD} pages 1 MiB apart (low RAM)", med["C3"], ITER_WALK),
        ("cross-check: miss = C3 - A2w" + ("" if misses["C3"] else " (C3 hit: n/a)"),
         nan if miss_ns["C3"] is None else miss_ns["C3"], ITER_WALK),
        ("info: D0 load; add; invlpg [unmapped]; dec; jnz", med["D0"], ITER_INVLPG),
        ("info: D  load; add; invlpg [same page]; dec; jnz", med["D"], ITER_INVLPG),
        ("info: D - D0 (miss + flush of a present entry)", med["D"] - med["D0"], ITER_INVLPG),
    ]
    print(f"\nResults: Unicorn {UC_PY_VERSION}, wall clock per iteration, median of {REPS} repetitions")
    print(f"  {'figure':<52} {'ns/op':>8} {'iterations':>11} {'reps':>5}")
    for name, ns, n in rows:
        print(f"  {name:<52} {ns:8.2f} {n:>11} {REPS:>5}")
    ok = all(res.values())
    print(f"  checks: {', '.join(f'{k}={v}' for k, v in res.items())}")
    print(f"  info: translation_output_used={info['translation_output_used']}, "
          f"C2 misses every page: {misses['C2']}, C3 misses every page: {misses['C3']}")
    print(f"  elapsed {elapsed:.1f} s")
    print(json.dumps({
        "peer": "unicorn", "unicorn_version": UC_PY_VERSION, "reps": REPS,
        "iterations": ITER, "iterations_walk": ITER_WALK,
        "tlb_hit_load_ns": round(hit, 3), "tlb_hit_load_shape2_ns": round(hit2, 3),
        "walk_load_ns": None if walk is None else round(walk, 3),
        "walk_load_cross_checks_ns": {"one_set_high_ram": None if miss_ns["C2"] is None else round(miss_ns["C2"], 3),
                                      "one_set_low_ram": None if miss_ns["C3"] is None else round(miss_ns["C3"], 3)},
        "translation_output_used": info["translation_output_used"], "checks_ok": ok,
    }))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
