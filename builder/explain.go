package builder

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io/fs"
	"strings"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"

	"github.com/strata-build/strata/cache"
	"github.com/strata-build/strata/dockerfile"
	"github.com/strata-build/strata/progress"
)

// explainRecord is what the step's key covers (plan.in) as --explain-cache
// compares it: each input named as a user knows it. It is made from the
// keyInput itself, so it names exactly what the key was computed from.
// maxExplainEnv bounds the variables (and build args) an explain record
// names one by one.
const maxExplainEnv = 64

func (b *build) explainRecord(r *stageRun, k int, st dockerfile.Step, plan *stepPlan, key string) *cache.Explain {
	in := plan.in
	x := &cache.Explain{
		Key: key, Stage: r.stage.DisplayName(), Step: k, Command: b.commandText(st),
		Parent: in.Parent, Base: r.state.base,
		Inputs: map[string]string{"platform": in.Platform, "layer compression and epoch": in.Layer},
	}
	args := map[string]bool{}
	for _, a := range st.Args {
		args[a.Key] = true
	}
	env := func(vars []string) {
		if len(vars) > maxExplainEnv {
			// Every step's record would hold the whole environment: a
			// Dockerfile of thousands of ENV made the records quadratic
			// (470 MB for 2,500 ENV and 2,500 LABEL). Past the bound the
			// record keeps a digest, and explain says the environment
			// changed without naming the variable.
			h := sha256.New()
			for _, kv := range vars {
				h.Write([]byte(kv))
				h.Write([]byte{0})
			}
			x.Inputs["environment"] = fmt.Sprintf("%d variables, sha256:%x", len(vars), h.Sum(nil))
			return
		}
		for _, kv := range vars {
			name, val, _ := strings.Cut(kv, "=")
			if args[name] {
				x.Inputs["build arg "+name] = val
			} else {
				x.Inputs["env "+name] = val
			}
		}
	}
	switch {
	case in.Run != nil:
		sp := in.Run.Spec
		env(sp.Env)
		x.Inputs["command"] = jsonString(sp.Args)
		x.Inputs["user"] = sp.User
		x.Inputs["working directory"] = sp.Cwd
		x.Inputs["network"] = string(sp.Network)
		x.Inputs["hostname"] = sp.Hostname
		if len(sp.ExtraHosts) > 0 {
			x.Inputs["--add-host"] = jsonString(sp.ExtraHosts)
		}
		if len(sp.Ulimits) > 0 {
			x.Inputs["--ulimit"] = jsonString(sp.Ulimits)
		}
		if sp.ShmSize > 0 {
			x.Inputs["--shm-size"] = fmt.Sprint(sp.ShmSize)
		}
		for i, m := range st.Mounts {
			x.Inputs[fmt.Sprintf("mount %d", i+1)] = jsonString(m)
		}
		for i, bp := range plan.binds {
			if bp == nil {
				continue
			}
			prefix := fmt.Sprintf("mount %d: ", i+1)
			x.Files = append(x.Files, explainFile(prefix, bp.root))
			for _, f := range bp.files {
				x.Files = append(x.Files, explainFile(prefix, f))
			}
		}
	case plan.copy != nil:
		cp := plan.copy
		x.Inputs["destination"] = cp.op.dest
		if cp.op.chownSpec != "" {
			x.Inputs["--chown"] = cp.op.chownSpec
		}
		if cp.op.mode != nil {
			x.Inputs["--chmod"] = fmt.Sprintf("%04o", uint32(*cp.op.mode))
		}
		if cp.op.chmod != "" {
			x.Inputs["--chmod"] = cp.op.chmod
		}
		if cp.op.parents {
			x.Inputs["--parents"] = "true"
		}
		if len(cp.op.exclude) > 0 {
			x.Inputs["--exclude"] = jsonString(cp.op.exclude)
		}
		if cp.fromKey != "" {
			// A stage's or image's files are covered by its key.
			x.Inputs["files of "+cp.fromName] = "as built by key " + short(cp.fromKey)
		}
		for _, p := range cp.files {
			switch {
			case p.Data != nil:
				x.Inputs["heredoc "+p.Name] = *p.Data
			case p.URLTime != nil && len(p.Files) == 1:
				x.Inputs["download "+p.srcPath] = "sha256:" + p.Files[0].Sum
			case p.Git != nil:
				x.Inputs["git "+p.Git.Remote] = p.Git.describe()
			default:
				for _, f := range p.Files {
					x.Files = append(x.Files, explainFile("", f))
				}
			}
		}
	case in.Workdir != nil:
		x.Inputs["directory"] = in.Workdir.Dir
		x.Inputs["user"] = in.Workdir.User
	default:
		// A metadata step follows the step before it, whatever its kind.
		x.Parent += " " + in.Prev
		env(in.Env)
		if len(in.Args) > maxExplainEnv {
			// As the environment: every metadata step's record held
			// every build arg in scope, quadratic in ARG count.
			h := sha256.New()
			for _, a := range in.Args {
				fmt.Fprintf(h, "%s\x00%t\x00%s\x00", a.Key, a.HasValue, a.Value)
			}
			x.Inputs["build args"] = fmt.Sprintf("%d in scope, sha256:%x", len(in.Args), h.Sum(nil))
		} else {
			for _, a := range in.Args {
				if a.HasValue {
					x.Inputs["build arg "+a.Key] = a.Value
				}
			}
		}
		if c, ok := st.Command.(*instructions.ArgCommand); ok {
			// ARG V given by --build-arg: the text shows the default.
			for _, a := range c.Args {
				if a.Value != nil {
					x.Inputs["build arg "+a.Key] = *a.Value
				}
			}
		} else {
			// The instruction with its words expanded (ENV FOO=$V): its
			// text shows them as written.
			x.Inputs["instruction, expanded"] = jsonString(in.Command)
		}
	}
	return x
}

// explainFile is a described file as an explain record shows it: the path
// in its source (the context, for COPY), and its attributes.
func explainFile(prefix string, f srcFile) cache.File {
	p := strings.TrimPrefix(f.entry.rel, "/")
	if p == "" {
		p = strings.TrimPrefix(f.Dst, "/")
	}
	e := cache.File{Path: prefix + p, Kind: string(f.Kind), Mode: fmt.Sprintf("%04o", uint32(f.Mode.Perm())|modeBits(f)), LinkTo: f.LinkTo}
	if f.Owner != nil {
		e.Owner = fmt.Sprintf("%d:%d", f.Owner.UID, f.Owner.GID)
	}
	switch {
	case f.Sum != "":
		e.Content = "sha256:" + f.Sum
	case f.Link != "":
		e.Content = f.Link
	case f.Dev != nil:
		e.Content = fmt.Sprintf("%d,%d", f.Dev.Major, f.Dev.Minor)
	}
	if len(f.Xattrs) > 0 {
		sum, _ := digestJSON(f.Xattrs)
		e.Xattrs = short(sum)
	}
	return e
}

// modeBits are setuid, setgid and sticky as the octal mode shows them.
func modeBits(f srcFile) uint32 {
	var m uint32
	if f.Mode&fs.ModeSetuid != 0 {
		m |= 0o4000
	}
	if f.Mode&fs.ModeSetgid != 0 {
		m |= 0o2000
	}
	if f.Mode&fs.ModeSticky != 0 {
		m |= 0o1000
	}
	return m
}

func jsonString(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

func short(key string) string {
	if len(key) > 12 {
		return key[:12]
	}
	return key
}

// explainMiss reports what differs between the step that missed and the
// closest entry the cache knows.
func (b *build) explainMiss(ctx context.Context, v *vertex, x *cache.Explain) {
	ex, ok := b.cache.(cache.Explainer)
	if !ok || x == nil {
		return
	}
	cands, err := ex.Similar(ctx, x)
	if err != nil {
		v.sink.Event(progress.CacheMiss{ID: v.id, Reasons: []string{"cannot read the cache's records: " + err.Error()}})
		return
	}
	v.sink.Event(progress.CacheMiss{ID: v.id, Reasons: cache.Diff(cache.Closest(x, cands), x)})
}
