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
// COPY/ADD sources and mode, RUN mount sources.
func (x *expansion) resolve(st *Step) error {
	switch c := st.Command.(type) {
	case *instructions.CopyCommand:
		if c.From != "" {
			src, err := x.source("COPY --from", c.From)
			if err != nil {
				return err
			}
			st.From = src
		}
		return x.copyFlags(st, c.Chmod, c.Chown, c.Link)
	case *instructions.AddCommand:
		if c.Checksum != "" && len(c.SourcePaths) != 1 {
			return errors.New("ADD --checksum needs exactly one source")
		}
		if i := slices.IndexFunc(c.SourcePaths, isGitSource); i >= 0 {
			return notSupported("ADD of the git repository %s", c.SourcePaths[i])
		}
		return x.copyFlags(st, c.Chmod, c.Chown, c.Link)
	case *instructions.RunCommand:
		return x.mounts(st, c)
	case *instructions.ExposeCommand:
		ports, err := exposedPorts(c.Ports)
		st.Ports = ports
		return err
	}
	return nil
}

// source resolves a --from value against the stages before this one. A
// stage that --target pruned can only be named here by an inherited ONBUILD
// trigger; it was not built, so that is an error.
func (x *expansion) source(flag, from string) (Source, error) {
	g := x.stage.graph
	src, err := g.all.resolveSource(x.stage.Index, flag, from)
	if err != nil {
		return Source{}, err
	}
	if src.Kind == SourceStage && g.Stage(src.Stage) == nil {
		return Source{}, fmt.Errorf("%s=%s: stage %s is not part of this build", flag, from, g.all[src.Stage].DisplayName())
	}
	return src, nil
}

func (x *expansion) copyFlags(st *Step, chmod, chown string, link bool) error {
	if chmod != "" {
		mode, err := parseChmod(chmod)
		if err != nil {
			return err
		}
		st.Mode = &mode
	}
	if link && chownByName(chown) {
		return fmt.Errorf("--chown=%s: user and group names can't be resolved when used with --link, use numeric uid[:gid] instead", chown)
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
		switch m.Type {
		case instructions.MountTypeSecret, instructions.MountTypeSSH:
			return notSupported("RUN --mount=type=%s", m.Type)
		}
		src := Source{Kind: SourceScratch}
		if m.From != "" {
			var err error
			if src, err = x.source("RUN --mount from", m.From); err != nil {
				return err
			}
		} else if m.Type == instructions.MountTypeBind {
			src = Source{Kind: SourceContext}
		}
		st.Mounts = append(st.Mounts, Mount{Mount: m, From: src})
	}
	return nil
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
