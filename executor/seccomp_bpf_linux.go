package executor

import (
	"encoding/binary"
	"fmt"
	"maps"
	"slices"

	"github.com/elastic/go-seccomp-bpf/arch"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

// Offsets in struct seccomp_data, the packet a seccomp filter reads.
const (
	dataNr   = 0
	dataArch = 4
	dataArgs = 16
)

// retENOSYS is what a call newer than the profile gets, so that a libc falls back to an
// older one (runc does the same).
const retENOSYS = unix.SECCOMP_RET_ERRNO | uint32(unix.ENOSYS)

// compileFilter compiles an evaluated profile into classic BPF with libseccomp's meaning:
// a call is allowed (or gets a rule's errno) when a rule names it and all the rule's
// argument conditions hold, rules tried in the profile's order; calls numbered above every
// call the profile names get ENOSYS; everything else, and calls of architectures the
// profile does not list, get the default action. Each of the profile's architectures that
// has a syscall table (the native one and its 32-bit companion) gets a section; within one,
// a binary search on the call number leads to the call's rules.
func compileFilter(p *specs.LinuxSeccomp) ([]bpf.Instruction, error) {
	def, err := retAction(p.DefaultAction, p.DefaultErrnoRet)
	if err != nil {
		return nil, err
	}
	arches, err := profileArches(p)
	if err != nil {
		return nil, err
	}
	prog := []bpf.Instruction{bpf.LoadAbsolute{Off: dataArch, Size: 4}}
	for _, info := range arches {
		sec, err := compileArch(p, info, def)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", info.Name, err)
		}
		prog = append(prog, guarded(uint32(info.ID), sec)...)
	}
	return append(prog, bpf.RetConstant{Val: def}), nil
}

// profileArches are the syscall tables for the profile's architectures, the native first.
func profileArches(p *specs.LinuxSeccomp) ([]*arch.Info, error) {
	native, err := arch.GetInfo("")
	if err != nil {
		return nil, fmt.Errorf("seccomp: %w", err)
	}
	out := []*arch.Info{native}
	tables := map[specs.Arch]*arch.Info{
		specs.ArchX86_64: arch.X86_64, specs.ArchX86: arch.I386,
		specs.ArchAARCH64: arch.AARCH64, specs.ArchARM: arch.ARM,
	}
	for _, a := range p.Architectures {
		// X32 shares x86_64's audit arch; its calls carry a high bit and get ENOSYS.
		if info := tables[a]; info != nil && !slices.ContainsFunc(out, func(i *arch.Info) bool { return i.ID == info.ID }) {
			out = append(out, info)
		}
	}
	return out, nil
}

// seccompRule is one profile rule for one call.
type seccompRule struct {
	args []specs.LinuxSeccompArg
	ret  uint32
}

// callBlock is the code for one call number: its rules, ending in a return.
type callBlock struct {
	nr   uint32
	code []bpf.Instruction
}

func compileArch(p *specs.LinuxSeccomp, info *arch.Info, def uint32) ([]bpf.Instruction, error) {
	rules := map[uint32][]seccompRule{}
	for _, r := range p.Syscalls {
		ret, err := retAction(r.Action, r.ErrnoRet)
		if err != nil {
			return nil, err
		}
		for _, name := range r.Names {
			// Names of other architectures' calls are skipped, as libseccomp does.
			if nr, ok := info.SyscallNames[name]; ok {
				rules[uint32(nr)] = append(rules[uint32(nr)], seccompRule{args: r.Args, ret: ret})
			}
		}
	}
	if len(rules) == 0 {
		return nil, fmt.Errorf("the profile names no call of this architecture")
	}
	var blocks []callBlock
	for _, nr := range slices.Sorted(maps.Keys(rules)) {
		code, err := callCode(rules[nr], def)
		if err != nil {
			return nil, fmt.Errorf("call %s: %w", info.SyscallNumbers[int(nr)], err)
		}
		blocks = append(blocks, callBlock{nr: nr, code: code})
	}
	maxNr := blocks[len(blocks)-1].nr
	sec := []bpf.Instruction{
		bpf.LoadAbsolute{Off: dataNr, Size: 4},
		bpf.JumpIf{Cond: bpf.JumpGreaterThan, Val: maxNr, SkipFalse: 1},
		bpf.RetConstant{Val: retENOSYS},
	}
	return append(sec, searchTree(blocks, def)...), nil
}

// searchTree finds the call number (in the accumulator) among blocks, sorted by number, and
// runs its block; a number not among them gets def. Every path ends in a return.
func searchTree(blocks []callBlock, def uint32) []bpf.Instruction {
	if len(blocks) <= 4 {
		var out []bpf.Instruction
		for _, b := range blocks {
			out = append(out, guarded(b.nr, b.code)...)
		}
		return append(out, bpf.RetConstant{Val: def})
	}
	mid := len(blocks) / 2
	left, right := searchTree(blocks[:mid], def), searchTree(blocks[mid:], def)
	// Above the left half's last number: jump over the left half.
	out := []bpf.Instruction{
		bpf.JumpIf{Cond: bpf.JumpGreaterThan, Val: blocks[mid-1].nr, SkipFalse: 1},
		bpf.Jump{Skip: uint32(len(left))},
	}
	out = append(out, left...)
	return append(out, right...)
}

// guarded runs body when the accumulator equals k and skips it otherwise; body must end in a
// return on every path.
func guarded(k uint32, body []bpf.Instruction) []bpf.Instruction {
	if len(body) <= 255 {
		return append([]bpf.Instruction{bpf.JumpIf{Cond: bpf.JumpEqual, Val: k, SkipFalse: uint8(len(body))}}, body...)
	}
	head := []bpf.Instruction{bpf.JumpIf{Cond: bpf.JumpEqual, Val: k, SkipTrue: 1}, bpf.Jump{Skip: uint32(len(body))}}
	return append(head, body...)
}

// callCode tries a call's rules in order; the first whose conditions all hold returns its
// action, and when none does the call gets def. The call number is not needed once here, so
// argument loads may clobber the accumulator.
func callCode(rules []seccompRule, def uint32) ([]bpf.Instruction, error) {
	var out []bpf.Instruction
	for _, r := range rules {
		if len(r.args) == 0 {
			// Rules after an unconditional one cannot match.
			return append(out, bpf.RetConstant{Val: r.ret}), nil
		}
		code, err := ruleCode(r)
		if err != nil {
			return nil, err
		}
		out = append(out, code...)
	}
	return append(out, bpf.RetConstant{Val: def}), nil
}

// Jump targets inside one rule's code, resolved by ruleCode.
type target int

const (
	toNext target = iota // the next instruction
	toPass               // the next condition: this one holds
	toFail               // past the rule: some condition does not hold
)

// cjump is a conditional jump with symbolic targets.
type cjump struct {
	cond bpf.JumpTest
	val  uint32
	t, f target
}

// ruleCode checks a rule's conditions in turn and returns its action when all hold; else it
// falls through to what follows the rule.
func ruleCode(r seccompRule) ([]bpf.Instruction, error) {
	type item struct {
		ins  bpf.Instruction
		jump *cjump
		end  int // index of the end of the item's condition
	}
	var items []item
	for _, a := range r.args {
		code, err := condCode(a)
		if err != nil {
			return nil, err
		}
		end := len(items) + len(code)
		for _, c := range code {
			it := item{end: end}
			switch c := c.(type) {
			case cjump:
				it.jump = &c
			case bpf.Instruction:
				it.ins = c
			}
			items = append(items, it)
		}
	}
	fail := len(items) + 1 // past the return below
	out := make([]bpf.Instruction, 0, fail)
	for i, it := range items {
		if it.jump == nil {
			out = append(out, it.ins)
			continue
		}
		skip := func(t target) (uint8, error) {
			dest := map[target]int{toNext: i + 1, toPass: it.end, toFail: fail}[t]
			if n := dest - i - 1; n >= 0 && n <= 255 {
				return uint8(n), nil
			}
			return 0, fmt.Errorf("rule too long to compile")
		}
		st, err := skip(it.jump.t)
		if err != nil {
			return nil, err
		}
		sf, err := skip(it.jump.f)
		if err != nil {
			return nil, err
		}
		out = append(out, bpf.JumpIf{Cond: it.jump.cond, Val: it.jump.val, SkipTrue: st, SkipFalse: sf})
	}
	return append(out, bpf.RetConstant{Val: r.ret}), nil
}

// condCode compares a 64-bit argument, unsigned, as libseccomp does, 32 bits at a time.
func condCode(a specs.LinuxSeccompArg) ([]any, error) {
	if a.Index > 5 {
		return nil, fmt.Errorf("argument index %d out of range", a.Index)
	}
	hi, lo := argWord(a.Index, true), argWord(a.Index, false)
	vhi, vlo := uint32(a.Value>>32), uint32(a.Value)
	switch a.Op {
	case specs.OpEqualTo:
		return []any{hi, cjump{bpf.JumpEqual, vhi, toNext, toFail}, lo, cjump{bpf.JumpEqual, vlo, toPass, toFail}}, nil
	case specs.OpNotEqual:
		return []any{hi, cjump{bpf.JumpEqual, vhi, toNext, toPass}, lo, cjump{bpf.JumpEqual, vlo, toFail, toPass}}, nil
	case specs.OpGreaterThan, specs.OpGreaterEqual:
		last := bpf.JumpGreaterThan
		if a.Op == specs.OpGreaterEqual {
			last = bpf.JumpGreaterOrEqual
		}
		return []any{hi, cjump{bpf.JumpGreaterThan, vhi, toPass, toNext}, cjump{bpf.JumpEqual, vhi, toNext, toFail},
			lo, cjump{last, vlo, toPass, toFail}}, nil
	case specs.OpLessThan, specs.OpLessEqual:
		// Below v is "not at or above" (LT) or "not above" (LE) v.
		last := bpf.JumpGreaterOrEqual
		if a.Op == specs.OpLessEqual {
			last = bpf.JumpGreaterThan
		}
		return []any{hi, cjump{bpf.JumpGreaterThan, vhi, toFail, toNext}, cjump{bpf.JumpEqual, vhi, toNext, toPass},
			lo, cjump{last, vlo, toFail, toPass}}, nil
	case specs.OpMaskedEqual:
		// (arg & Value) == ValueTwo.
		mhi, mlo := uint32(a.ValueTwo>>32), uint32(a.ValueTwo)
		return []any{hi, bpf.ALUOpConstant{Op: bpf.ALUOpAnd, Val: vhi}, cjump{bpf.JumpEqual, mhi, toNext, toFail},
			lo, bpf.ALUOpConstant{Op: bpf.ALUOpAnd, Val: vlo}, cjump{bpf.JumpEqual, mlo, toPass, toFail}}, nil
	}
	return nil, fmt.Errorf("seccomp operator %s is not supported", a.Op)
}

// argWord loads the high or low 32 bits of argument i.
func argWord(i uint, high bool) bpf.Instruction {
	off := uint32(dataArgs + 8*i)
	littleEndian := binary.NativeEndian.Uint16([]byte{1, 0}) == 1
	if high == littleEndian {
		off += 4
	}
	return bpf.LoadAbsolute{Off: off, Size: 4}
}

// retAction is the filter's return value for a profile action.
func retAction(a specs.LinuxSeccompAction, errnoRet *uint) (uint32, error) {
	switch a {
	case specs.ActAllow:
		return unix.SECCOMP_RET_ALLOW, nil
	case specs.ActErrno:
		errno := uint32(unix.EPERM)
		if errnoRet != nil {
			errno = uint32(*errnoRet)
		}
		return unix.SECCOMP_RET_ERRNO | errno&unix.SECCOMP_RET_DATA, nil
	case specs.ActKillProcess:
		return unix.SECCOMP_RET_KILL_PROCESS, nil
	case specs.ActKill, specs.ActKillThread:
		return unix.SECCOMP_RET_KILL_THREAD, nil
	case specs.ActTrap:
		return unix.SECCOMP_RET_TRAP, nil
	case specs.ActLog:
		return unix.SECCOMP_RET_LOG, nil
	}
	return 0, fmt.Errorf("seccomp action %s is not supported", a)
}
