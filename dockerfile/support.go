package dockerfile

import (
	"errors"
	"fmt"
	"io/fs"
	"slices"
	"strconv"
	"strings"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"
)

// checkParsed rejects flags that Docker accepts but Strata cannot honour
// yet. Each is refused here, in one place, so none is silently ignored.
func checkParsed(cmd instructions.Command) error {
	switch c := cmd.(type) {
	case *instructions.RunCommand:
		if slices.Contains(c.FlagsUsed, "device") {
			return notSupported("RUN --device")
		}
		if instructions.GetSecurity(c) == instructions.SecurityInsecure {
			return notSupported("RUN --security=insecure")
		}
	case *instructions.AddCommand:
		if c.KeepGitDir != nil {
			return notSupported("ADD --keep-git-dir (git sources)")
		}
		if c.Unpack != nil {
			return notSupported("ADD --unpack")
		}
		if len(c.ExcludePatterns) > 0 {
			return notSupported("ADD --exclude")
		}
	case *instructions.CopyCommand:
		if len(c.ExcludePatterns) > 0 {
			return notSupported("COPY --exclude")
		}
		if c.Parents {
			return notSupported("COPY --parents")
		}
	}
	return nil
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
// HTTP(S) or git source, and git sources are not supported yet.
func (x *expansion) addSources(c, raw *instructions.AddCommand) error {
	if c.Checksum != "" {
		if len(c.SourcePaths) != 1 {
			return errors.New("ADD --checksum can't be specified for multiple sources")
		}
		src := c.SourcePaths[0]
		if !isHTTPSource(src) && !isGitSource(src) && !x.unknown(raw.SourcePaths[0]) {
			return fmt.Errorf("ADD --checksum=%s %s: checksum requires HTTP(S) or Git sources", c.Checksum, src)
		}
	}
	for i, src := range c.SourcePaths {
		if isGitSource(src) && !x.unknown(raw.SourcePaths[i]) {
			return notSupported("ADD of the git repository %s", src)
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
		mode, err := parseChmod(f.chmod)
		if err != nil {
			return err
		}
		st.Mode = &mode
	}
	if f.link && chownByName(f.chown) && !x.unknown(f.rawChown) {
		return fmt.Errorf("--chown=%s: user and group names can't be resolved when used with --link, use numeric uid[:gid] instead", f.chown)
	}
	return nil
}

// parseChmod accepts what BuildKit accepts as a number: octal up to 07777.
// BuildKit's symbolic modes (u+x) need a library Strata does not carry.
func parseChmod(s string) (fs.FileMode, error) {
	p, err := strconv.ParseUint(s, 8, 32)
	if err == nil && p <= 0o7777 {
		return fs.FileMode(p&0o777) | unixModeBits(p), nil
	}
	if err != nil && strings.Trim(s, "ugoa+-=rwxXst,") == "" && s != "" {
		return 0, notSupported("symbolic --chmod=%s", s)
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

// mounts resolves each RUN --mount's source and refuses the kinds Strata
// has no CLI for yet.
func (x *expansion) mounts(st *Step, c *instructions.RunCommand) error {
	for _, m := range instructions.GetMounts(c) {
		if err := checkMountType(m); err != nil {
			return err
		}
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

// checkMountType refuses the mount kinds Strata has no CLI for yet.
func checkMountType(m *instructions.Mount) error {
	switch m.Type {
	case instructions.MountTypeSecret, instructions.MountTypeSSH:
		return notSupported("RUN --mount=type=%s", m.Type)
	}
	return nil
}

// isHTTPSource is BuildKit's test for a source ADD downloads.
func isHTTPSource(src string) bool {
	return (strings.HasPrefix(src, "http://") || strings.HasPrefix(src, "https://")) && !isGitSource(src)
}

// isGitSource spots the ADD sources BuildKit clones with git rather than
// downloads, so that such a source is refused instead of fetched as a page.
func isGitSource(src string) bool {
	if strings.HasPrefix(src, "git@") || strings.HasPrefix(src, "git://") {
		return true
	}
	if !strings.Contains(src, "://") {
		return false
	}
	path, _, _ := strings.Cut(src, "#")
	return strings.HasSuffix(path, ".git")
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
