package dockerfile

import (
	"errors"
	"fmt"
	"io/fs"
	"slices"
	"strconv"
	"strings"

	"github.com/moby/buildkit/frontend/dockerfile/dfgitutil"
	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	chmod "github.com/tonistiigi/dchapes-mode"
)

// The support table: every Dockerfile feature Docker accepts and Strata
// does not implement yet, in one place. Parse checks each instruction of
// every stage the target needs against it once the instruction is
// expanded (Stage.Expand does the same for the ONBUILD triggers of a base
// image, before any step of the stage runs), so a build that needs one of
// these fails before its first step, at the first instruction that uses
// one. BuildKit's own errors about an instruction come first: a row only
// judges an instruction Docker would run. Nothing after Parse refuses a
// Dockerfile feature: the builder may take it that none of these reaches
// it.
var unsupported = []feature{
	{"", func(in *instruction) bool { return !builderKnows(in.cmd) },
		"an instruction of this BuildKit release that Strata's builder has no code for"},
	{"RUN --device", func(in *instruction) bool { r := in.run(); return r != nil && slices.Contains(r.FlagsUsed, "device") },
		// BuildKit's are CDI devices, behind the device entitlement; no
		// subset is safe without CDI's specs, which say what to expose.
		"BuildKit's --device names CDI devices and Strata reads no CDI specs, so the sandbox gives a step no host device: build this step with docker buildx and --allow device"},
	{"RUN --security=insecure", func(in *instruction) bool {
		r := in.run()
		return r != nil && instructions.GetSecurity(r) == instructions.SecurityInsecure
		// Insecure is all capabilities, no seccomp and the host's devices:
		// BuildKit's whole point of the entitlement is that it is not a
		// sandbox; Strata's executor has no such mode.
	}, "RUN steps always run in the sandbox, with Docker's default capabilities and seccomp profile: run a step that needs privileges outside the build, or with docker buildx and --allow security.insecure"},
}

// feature is a row of the support table.
type feature struct {
	// name is the feature as a user writes it; "" stands for the
	// instruction itself.
	name string
	// used reports whether the instruction uses the feature.
	used func(*instruction) bool
	// hint says in one line why the feature is missing or what to do
	// instead.
	hint string
}

// instruction is what a row judges: one instruction, expanded and as
// written.
type instruction struct {
	// cmd is the expanded instruction; for a RUN whose --mount flags wait
	// for the base image's ENV (a preview's deferred RUN), the RUN as
	// written, and mounts is then empty.
	cmd, raw instructions.Command
	// mounts are a RUN's --mount flags, expanded.
	mounts []*instructions.Mount
	// unknown reports whether a value as written uses a variable the base
	// image's ENV may define, unknown in a preview: such a value is judged
	// by Stage.Expand once the image's State is known.
	unknown func(raw string) bool
}

func (in *instruction) run() *instructions.RunCommand {
	c, _ := in.cmd.(*instructions.RunCommand)
	return c
}

func (in *instruction) add() *instructions.AddCommand {
	c, _ := in.cmd.(*instructions.AddCommand)
	return c
}

func (in *instruction) copy() *instructions.CopyCommand {
	c, _ := in.cmd.(*instructions.CopyCommand)
	return c
}

// anyMount makes a row's test of RUN --mount flags: whether one matches.
func anyMount(match func(*instructions.Mount) bool) func(*instruction) bool {
	return func(in *instruction) bool { return slices.ContainsFunc(in.mounts, match) }
}

func mountOf(t instructions.MountType) func(*instructions.Mount) bool {
	return func(m *instructions.Mount) bool { return m.Type == t }
}

// builderKnows lists the instructions the builder applies (its applyConfig
// switch): a kind a newer BuildKit adds is refused rather than skipped.
func builderKnows(cmd instructions.Command) bool {
	switch cmd.(type) {
	case *instructions.RunCommand, *instructions.CopyCommand, *instructions.AddCommand,
		*instructions.EnvCommand, *instructions.LabelCommand, *instructions.WorkdirCommand,
		*instructions.UserCommand, *instructions.ExposeCommand, *instructions.VolumeCommand,
		*instructions.StopSignalCommand, *instructions.ShellCommand, *instructions.OnbuildCommand,
		*instructions.MaintainerCommand, *instructions.CmdCommand, *instructions.EntrypointCommand,
		*instructions.HealthCheckCommand, *instructions.ArgCommand:
		return true
	}
	return false
}

// check refuses the instruction if it uses a feature of the table, naming
// the first row that matches.
func (x *expansion) check(cmd, raw instructions.Command, mounts []*instructions.Mount) error {
	in := &instruction{cmd: cmd, raw: raw, mounts: mounts, unknown: x.unknown}
	for _, f := range unsupported {
		if f.used(in) {
			return f.refusal(cmd)
		}
	}
	return nil
}

// refusal is the error for an instruction that uses f: the feature, then
// ErrNotSupported, then the hint.
func (f feature) refusal(cmd instructions.Command) error {
	name := f.name
	if name == "" {
		name = strings.ToUpper(cmd.Name())
	}
	return fmt.Errorf("%s: %w (%s)", name, ErrNotSupported, f.hint)
}

// resolve fills in the parts of st that need the expanded instruction:
// COPY/ADD sources and mode, RUN mount sources, EXPOSE ports, and checks
// the values BuildKit checks when it dispatches. raw is the instruction
// before expansion: a value that depends on the base image's ENV is only
// checked once that ENV is known (see unknown).
func (x *expansion) resolve(st *Step, raw instructions.Command) error {
	switch c := st.Command.(type) {
	case *instructions.CopyCommand:
		r := raw.(*instructions.CopyCommand)
		if c.From != "" {
			src, err := x.source(fromRef{"COPY --from", c.From, true})
			if err != nil {
				return err
			}
			st.From = src
		}
		return x.copyFlags(st, copyFlags{c.Chmod, r.Chmod, c.Chown, r.Chown, c.Link})
	case *instructions.AddCommand:
		r := raw.(*instructions.AddCommand)
		if err := x.addSources(c, r); err != nil {
			return err
		}
		return x.copyFlags(st, copyFlags{c.Chmod, r.Chmod, c.Chown, r.Chown, c.Link})
	case *instructions.RunCommand:
		return x.mounts(st, c)
	case *instructions.ExposeCommand:
		ports, err := x.ports(raw.(*instructions.ExposeCommand).Ports)
		st.Ports = ports
		return err
	case *instructions.StopSignalCommand:
		if x.unknown(raw.(*instructions.StopSignalCommand).Signal) {
			return nil
		}
		return checkSignal(c.Signal)
	}
	return nil
}

// unknown reports whether the raw word uses a variable that neither the
// stage nor a known base defines: in the preview of a stage built on an
// image, the image's ENV may define it, so its value is not known yet and
// must not be judged. Expand with the image's State checks it.
func (x *expansion) unknown(raw string) bool {
	if !x.lex.SkipUnsetEnv {
		return false
	}
	lex := x.stage.graph.scope.lex(false)
	_, unmatched, err := lex.ProcessWord(raw, x.env)
	return err == nil && len(unmatched) > 0
}

// addSources checks ADD's sources as BuildKit does: --checksum needs one
// HTTP(S) or git source; a git source must parse, and its query must agree
// with --keep-git-dir and --checksum (a commit).
func (x *expansion) addSources(c, raw *instructions.AddCommand) error {
	for i, src := range c.SourcePaths {
		if x.unknown(raw.SourcePaths[i]) {
			continue
		}
		if err := checkGitSource(src, c.KeepGitDir, c.Checksum); err != nil {
			return err
		}
	}
	if c.Checksum != "" {
		if len(c.SourcePaths) != 1 {
			return errors.New("ADD --checksum can't be specified for multiple sources")
		}
		src := c.SourcePaths[0]
		if !isHTTPSource(src) && !isGitSource(src) && !x.unknown(raw.SourcePaths[0]) {
			return fmt.Errorf("ADD --checksum=%s %s: checksum requires HTTP(S) or Git sources", c.Checksum, src)
		}
	}
	return nil
}

// ports normalises EXPOSE's words. In a preview, a word that depends on
// the base image's ENV is listed as written, unchecked.
func (x *expansion) ports(raw []string) ([]string, error) {
	var out []string
	for _, spec := range raw {
		words, err := x.lex.ProcessWords(spec, x.env)
		if err != nil {
			return nil, fmt.Errorf("EXPOSE %s: %w", spec, err)
		}
		if x.unknown(spec) {
			out = append(out, words...)
			continue
		}
		ports, err := exposedPorts(words)
		if err != nil {
			return nil, err
		}
		out = append(out, ports...)
	}
	return out, nil
}

// source resolves a --from value against the stages before this one. A
// stage that --target pruned can only be named here by an inherited ONBUILD
// trigger of an image; it was not built, so that is an error.
func (x *expansion) source(ref fromRef) (Source, error) {
	g := x.stage.graph
	src, err := g.all.resolveSource(x.stage.Index, ref)
	if err != nil {
		return Source{}, err
	}
	if src.Kind == SourceStage && g.Stage(src.Stage) == nil {
		return Source{}, fmt.Errorf("%s=%s: stage %s is not part of this build", ref.flag, ref.value, g.all[src.Stage].DisplayName())
	}
	return src, nil
}

// copyFlags are COPY/ADD's --chmod and --chown, expanded and raw, and
// --link.
type copyFlags struct {
	chmod, rawChmod, chown, rawChown string
	link                             bool
}

func (x *expansion) copyFlags(st *Step, f copyFlags) error {
	if f.chmod != "" && !x.unknown(f.rawChmod) {
		if _, err := strconv.ParseUint(f.chmod, 8, 32); err != nil {
			// Not octal: a symbolic mode (u+x,go-w), which the builder
			// applies to each file (ParseChmod); checked here as BuildKit
			// checks it, before any step runs.
			if _, err := ParseChmod(f.chmod); err != nil {
				return err
			}
		} else {
			mode, err := parseChmod(f.chmod)
			if err != nil {
				return err
			}
			st.Mode = &mode
		}
	}
	if f.link && chownByName(f.chown) && !x.unknown(f.rawChown) {
		return fmt.Errorf("--chown=%s: user and group names can't be resolved when used with --link, use numeric uid[:gid] instead", f.chown)
	}
	return nil
}

// parseChmod accepts what BuildKit accepts as a number: octal up to 07777.
// Symbolic modes (u+x) are ParseChmod's.
func parseChmod(s string) (fs.FileMode, error) {
	p, err := strconv.ParseUint(s, 8, 32)
	if err == nil && p <= 0o7777 {
		return fs.FileMode(p&0o777) | unixModeBits(p), nil
	}
	return 0, fmt.Errorf("invalid chmod parameter: '%s'. it should be octal string and between 0 and 07777", s)
}

// unixModeBits maps setuid, setgid and sticky onto Go's FileMode bits.
func unixModeBits(p uint64) fs.FileMode {
	var m fs.FileMode
	if p&0o4000 != 0 {
		m |= fs.ModeSetuid
	}
	if p&0o2000 != 0 {
		m |= fs.ModeSetgid
	}
	if p&0o1000 != 0 {
		m |= fs.ModeSticky
	}
	return m
}

// ParseChmod parses a symbolic --chmod (u+x,g-w, a=rX) as BuildKit does,
// with tonistiigi/dchapes-mode (BuildKit's own parser, umask 0): the one
// parser both the check before the build and the builder's writer use. A
// value that looks numeric gets BuildKit's octal error.
func ParseChmod(s string) (chmod.Set, error) {
	set, err := chmod.Parse(s)
	if err != nil {
		if _, numeric := errors.AsType[*strconv.NumError](err); numeric {
			return chmod.Set{}, fmt.Errorf("invalid chmod parameter: '%s'. it should be octal string and between 0 and 07777", s)
		}
		return chmod.Set{}, fmt.Errorf("invalid chmod parameter: '%s': %w", s, err)
	}
	return set, nil
}

// chownByName reports whether a --chown value names a user or group rather
// than giving numbers.
func chownByName(chown string) bool {
	if chown == "" {
		return false
	}
	for part := range strings.SplitSeq(chown, ":") {
		if _, err := strconv.ParseUint(part, 10, 32); err != nil {
			return true
		}
	}
	return false
}

// mounts resolves each RUN --mount's source.
func (x *expansion) mounts(st *Step, c *instructions.RunCommand) error {
	for _, m := range instructions.GetMounts(c) {
		src := Source{Kind: SourceScratch}
		if m.From != "" {
			var err error
			if src, err = x.source(mountRef(m.From)); err != nil {
				return err
			}
		} else if m.Type == instructions.MountTypeBind {
			src = Source{Kind: SourceContext}
		}
		st.Mounts = append(st.Mounts, Mount{Mount: m, From: src})
	}
	return nil
}

// isHTTPSource is BuildKit's test for a source ADD downloads.
func isHTTPSource(src string) bool {
	return (strings.HasPrefix(src, "http://") || strings.HasPrefix(src, "https://")) && !isGitSource(src)
}

// isGitSource is BuildKit's test for an ADD source it clones with git
// rather than downloads (its own parser: https://host/repo.git#ref:dir,
// git@host:repo, git://host/repo).
func isGitSource(src string) bool {
	ref, isGit, _ := dfgitutil.ParseGitRef(src)
	return ref != nil && isGit
}

// isCommit reports whether ref is a full commit hash (SHA-1 or SHA-256).
func isCommit(ref string) bool {
	return (len(ref) == 40 || len(ref) == 64) && strings.Trim(ref, "0123456789abcdef") == ""
}

// checkGitSource refuses, before any step runs, a git source BuildKit
// refuses when it converts the Dockerfile: one that does not parse, or
// whose query contradicts --keep-git-dir or --checksum.
func checkGitSource(src string, keep *bool, checksum string) error {
	ref, isGit, err := dfgitutil.ParseGitRef(src)
	if err != nil {
		if isGit {
			return fmt.Errorf("ADD %s: %w", src, err)
		}
		return nil
	}
	if ref.IndistinguishableFromLocal {
		return nil
	}
	if keep != nil && ref.KeepGitDir != nil && *keep != *ref.KeepGitDir {
		return fmt.Errorf("ADD %s: inconsistent keep-git-dir configuration", src)
	}
	if checksum != "" && ref.Checksum != "" && checksum != ref.Checksum {
		return fmt.Errorf("ADD %s: checksum mismatch %q != %q", src, checksum, ref.Checksum)
	}
	if checksum == "" {
		checksum = ref.Checksum
	}
	if checksum != "" && strings.Trim(strings.ToLower(checksum), "0123456789abcdef") != "" {
		return fmt.Errorf("ADD --checksum=%s %s: invalid checksum for a git source, expected a hex commit hash", checksum, src)
	}
	if ref.FetchByCommit && checksum == "" && !isCommit(ref.Ref) {
		return fmt.Errorf("ADD %s: fetch-by-commit requires a checksum or a commit SHA ref", src)
	}
	return nil
}

// octalMode is the inverse of parseChmod, for printing.
func octalMode(m fs.FileMode) uint32 {
	o := uint32(m.Perm())
	if m&fs.ModeSetuid != 0 {
		o |= 0o4000
	}
	if m&fs.ModeSetgid != 0 {
		o |= 0o2000
	}
	if m&fs.ModeSticky != 0 {
		o |= 0o1000
	}
	return o
}
