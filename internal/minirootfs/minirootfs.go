package minirootfs

import (
	"bytes"
	"debug/elf"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"
)

// DefaultBusybox is where Debian's busybox-static installs its binary.
const DefaultBusybox = "/bin/busybox"

// Options say where busybox comes from and which time every file carries.
type Options struct {
	// Busybox is the statically linked busybox binary; DefaultBusybox when empty.
	Busybox string
	// ModTime is the mtime of every entry; the Unix epoch when zero.
	ModTime time.Time
}

// AppUID and friends name the test user the tree provides, for USER tests.
const (
	AppUID      = 1000
	AppGID      = 1000
	StaffGID    = 50
	NobodyUID   = 65534
	NobodyGroup = 65534
)

const passwd = `root:x:0:0:root:/root:/bin/sh
app:x:1000:1000:app:/home/app:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
`

const group = `root:x:0:
staff:x:50:app
app:x:1000:
nogroup:x:65534:
`

// entry is one path of the tree with the mode and owner it must end up with.
type entry struct {
	path     string
	mode     os.FileMode
	uid, gid int
	content  []byte // for regular files; nil for directories
}

// skeleton lists the directories and files other than busybox and its applet links.
func skeleton() []entry {
	return []entry{
		{path: "bin", mode: 0o755},
		{path: "dev", mode: 0o755},
		{path: "etc", mode: 0o755},
		{path: "etc/group", mode: 0o644, content: []byte(group)},
		{path: "etc/passwd", mode: 0o644, content: []byte(passwd)},
		{path: "home", mode: 0o755},
		{path: "home/app", mode: 0o755, uid: AppUID, gid: AppGID},
		{path: "proc", mode: 0o755},
		{path: "root", mode: 0o700},
		{path: "sbin", mode: 0o755},
		{path: "sys", mode: 0o755},
		{path: "tmp", mode: 0o777 | os.ModeSticky},
		{path: "usr", mode: 0o755},
		{path: "usr/bin", mode: 0o755},
		{path: "usr/sbin", mode: 0o755},
	}
}

// Make creates the tree in dir, which must not exist or be empty.
func Make(dir string, opts Options) error {
	if opts.Busybox == "" {
		opts.Busybox = DefaultBusybox
	}
	if opts.ModTime.IsZero() {
		opts.ModTime = time.Unix(0, 0)
	}
	machine, err := checkStatic(opts.Busybox)
	if err != nil {
		return err
	}
	applets, err := listApplets(opts.Busybox, machine)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("creating rootfs dir: %w", err)
	}
	// The root is a directory of the tree too: its mtime lands in a layer's "./" entry.
	m := maker{root: dir, modTime: opts.ModTime, chown: os.Geteuid() == 0, dirs: []string{dir}}
	return m.make(opts.Busybox, applets)
}

// checkStatic refuses a dynamically linked busybox: its loader and libc would be missing
// from the tree, so every command in it would fail with "not found". It returns the binary's
// architecture: a busybox of another one (arm64 on an amd64 host) makes that platform's tree.
func checkStatic(path string) (elfID, error) {
	f, err := elf.Open(path)
	if err != nil {
		return elfID{}, fmt.Errorf("reading busybox %s: %w", path, err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return elfID{}, fmt.Errorf("busybox %s is dynamically linked; install busybox-static", path)
		}
	}
	return elfID{f.Machine, f.Class, f.Data}, nil
}

// elfID is what tells one architecture's binaries from another's.
type elfID struct {
	machine elf.Machine
	class   elf.Class
	data    elf.Data
}

// qemuName is qemu-user's name for the architecture ("aarch64"), "" for one it lacks here.
func (id elfID) qemuName() string {
	le, is64 := id.data == elf.ELFDATA2LSB, id.class == elf.ELFCLASS64
	switch {
	case id.machine == elf.EM_X86_64:
		return "x86_64"
	case id.machine == elf.EM_386:
		return "i386"
	case id.machine == elf.EM_AARCH64 && le:
		return "aarch64"
	case id.machine == elf.EM_ARM && le:
		return "arm"
	case id.machine == elf.EM_PPC64 && le:
		return "ppc64le"
	case id.machine == elf.EM_S390:
		return "s390x"
	case id.machine == elf.EM_RISCV && is64:
		return "riscv64"
	case id.machine == elf.EM_MIPS && is64 && le:
		return "mips64el"
	case id.machine == elf.EM_LOONGARCH:
		return "loongarch64"
	}
	return ""
}

// listApplets returns the install paths busybox reports (like "usr/bin/env"), sorted. The
// list comes from the binary itself, also for another architecture's busybox: its own
// build's applets, not a host busybox's that may differ in version or configuration. Such a
// binary runs through the kernel's binfmt_misc handler when one is registered, else through
// qemu-user (qemu-ARCH-static) directly.
func listApplets(busybox string, id elfID) ([]string, error) {
	out, err := runList(busybox)
	if errors.Is(err, syscall.ENOEXEC) {
		qemu := ""
		if name := id.qemuName(); name != "" {
			for _, q := range []string{"qemu-" + name + "-static", "qemu-" + name} {
				if p, lerr := exec.LookPath(q); lerr == nil {
					qemu = p
					break
				}
			}
		}
		if qemu == "" {
			return nil, fmt.Errorf("listing busybox applets: %s is a binary of %s this host cannot run: install qemu-user-static (apt-get install qemu-user-static)", busybox, id.machine)
		}
		out, err = runList(qemu, busybox)
	}
	if err != nil {
		return nil, err
	}
	var applets []string
	for _, line := range strings.Split(out, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || line == "bin/busybox" {
			continue
		}
		if !filepath.IsLocal(line) {
			return nil, fmt.Errorf("busybox lists an applet path outside the tree: %q", line)
		}
		applets = append(applets, line)
	}
	sort.Strings(applets)
	return applets, nil
}

// runList runs "busybox --list-full", through argv[0] when it is an emulator.
func runList(argv ...string) (string, error) {
	var stderr bytes.Buffer
	cmd := exec.Command(argv[0], append(argv[1:], "--list-full")...)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("listing busybox applets with %s: %w: %s", strings.Join(argv, " "), err, strings.TrimSpace(stderr.String()))
	}
	return string(out), nil
}

type maker struct {
	root    string
	modTime time.Time
	chown   bool
	dirs    []string // every directory made, to set its mtime last
}

func (m *maker) make(busybox string, applets []string) error {
	for _, e := range skeleton() {
		if err := m.write(e); err != nil {
			return err
		}
	}
	if err := m.copyBusybox(busybox); err != nil {
		return err
	}
	for _, a := range applets {
		if err := m.link(a); err != nil {
			return err
		}
	}
	// Directory mtimes last: creating their entries changed them.
	for i := len(m.dirs) - 1; i >= 0; i-- {
		if err := os.Chtimes(m.dirs[i], m.modTime, m.modTime); err != nil {
			return fmt.Errorf("setting mtime: %w", err)
		}
	}
	return nil
}

func (m *maker) write(e entry) error {
	p := filepath.Join(m.root, e.path)
	var err error
	if e.content == nil {
		err = os.Mkdir(p, 0o700)
		m.dirs = append(m.dirs, p)
	} else {
		err = os.WriteFile(p, e.content, 0o600)
	}
	if err != nil && !errors.Is(err, os.ErrExist) {
		return fmt.Errorf("creating %s: %w", e.path, err)
	}
	return m.finish(p, e)
}

// finish sets mode, owner and time explicitly so the umask and the caller's ids do not leak in.
func (m *maker) finish(p string, e entry) error {
	if m.chown {
		if err := os.Lchown(p, e.uid, e.gid); err != nil {
			return fmt.Errorf("chown %s: %w", e.path, err)
		}
	}
	if err := os.Chmod(p, e.mode); err != nil {
		return fmt.Errorf("chmod %s: %w", e.path, err)
	}
	if err := os.Chtimes(p, m.modTime, m.modTime); err != nil {
		return fmt.Errorf("setting mtime of %s: %w", e.path, err)
	}
	return nil
}

func (m *maker) copyBusybox(src string) error {
	in, err := os.Open(src)
	if err != nil {
		return fmt.Errorf("opening busybox: %w", err)
	}
	defer in.Close()
	p := filepath.Join(m.root, "bin/busybox")
	out, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("creating bin/busybox: %w", err)
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return fmt.Errorf("copying busybox: %w", err)
	}
	if err := out.Close(); err != nil {
		return fmt.Errorf("copying busybox: %w", err)
	}
	return m.finish(p, entry{path: "bin/busybox", mode: 0o755})
}

// link makes one applet symlink, creating any directory busybox names that the skeleton lacks.
func (m *maker) link(applet string) error {
	var missing []string
	for d := filepath.Dir(applet); d != "."; d = filepath.Dir(d) {
		if _, err := os.Lstat(filepath.Join(m.root, d)); errors.Is(err, os.ErrNotExist) {
			missing = append(missing, d)
		}
	}
	for i := len(missing) - 1; i >= 0; i-- {
		if err := m.write(entry{path: missing[i], mode: 0o755}); err != nil {
			return err
		}
	}
	p := filepath.Join(m.root, applet)
	if err := os.Symlink("/bin/busybox", p); err != nil {
		return fmt.Errorf("linking applet %s: %w", applet, err)
	}
	if m.chown {
		if err := os.Lchown(p, 0, 0); err != nil {
			return fmt.Errorf("chown %s: %w", applet, err)
		}
	}
	if err := lchtimes(p, m.modTime); err != nil {
		return fmt.Errorf("setting mtime of %s: %w", applet, err)
	}
	return nil
}
