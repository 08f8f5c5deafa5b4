package dockerfile

import (
	"runtime"
	"slices"
	"strings"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/shell"
	specs "github.com/opencontainers/image-spec/specs-go/v1"
)

// Options configure Parse.
type Options struct {
	// File names the Dockerfile in errors and output; "Dockerfile" if empty.
	File string
	// BuildArgs are the --build-arg values. They override ARG defaults and
	// the predefined args.
	BuildArgs map[string]string
	// Target is the stage to build (--target); the last stage if empty.
	Target string
	// Platform is the target platform; BuildPlatform if zero.
	Platform specs.Platform
	// BuildPlatform is the platform Strata runs on; the Go runtime's if zero.
	BuildPlatform specs.Platform
}

// proxyArgs are Docker's predefined args that need no ARG declaration.
var proxyArgs = []string{"HTTP_PROXY", "HTTPS_PROXY", "FTP_PROXY", "NO_PROXY", "ALL_PROXY"}

func isProxyArg(key string) bool {
	return slices.Contains(proxyArgs, strings.ToUpper(key))
}

// scope holds what every stage's ARG resolution needs.
type scope struct {
	buildArgs map[string]string
	global    argList
	escape    rune
}

func (sc *scope) lex(keepUnset bool) *shell.Lex {
	l := shell.NewLex(sc.escape)
	l.SkipUnsetEnv = keepUnset
	return l
}

func (o *Options) normalize() {
	if o.File == "" {
		o.File = "Dockerfile"
	}
	if o.BuildPlatform.OS == "" {
		o.BuildPlatform = specs.Platform{OS: runtime.GOOS, Architecture: runtime.GOARCH}
	}
	if o.Platform.OS == "" {
		o.Platform = o.BuildPlatform
	}
}

func formatPlatform(p specs.Platform) string {
	s := p.OS + "/" + p.Architecture
	if p.Variant != "" {
		s += "/" + p.Variant
	}
	return s
}

// predefinedArgs are the platform args BuildKit defines for every build,
// each overridable by --build-arg.
func predefinedArgs(o *Options, target string) argList {
	if target == "" {
		target = "default"
	}
	bp, tp := o.BuildPlatform, o.Platform
	pairs := [][2]string{
		{"BUILDPLATFORM", formatPlatform(bp)},
		{"BUILDOS", bp.OS},
		{"BUILDOSVERSION", bp.OSVersion},
		{"BUILDARCH", bp.Architecture},
		{"BUILDVARIANT", bp.Variant},
		{"TARGETPLATFORM", formatPlatform(tp)},
		{"TARGETOS", tp.OS},
		{"TARGETOSVERSION", tp.OSVersion},
		{"TARGETARCH", tp.Architecture},
		{"TARGETVARIANT", tp.Variant},
		{"TARGETSTAGE", target},
	}
	var args argList
	for _, kv := range pairs {
		v := kv[1]
		if ov, ok := o.BuildArgs[kv[0]]; ok {
			v = ov
		}
		args.set(Arg{Key: kv[0], Value: v, HasValue: true})
	}
	return args
}

// resolveMetaArgs applies the ARGs before the first FROM in order, as
// BuildKit's buildMetaArgs does: a --build-arg wins over the default, and a
// default is expanded with the args defined so far. An ARG with no value
// only declares the name: it never erases a value set before it, such as a
// predefined arg's (`ARG TARGETOS` keeps the target's OS).
func (sc *scope) resolveMetaArgs(file string, metas []*instructions.ArgCommand) error {
	lex := sc.lex(false)
	for _, cmd := range metas {
		for _, kv := range cmd.Args {
			a := Arg{Key: kv.Key}
			if v, ok := sc.buildArgs[kv.Key]; ok {
				a.Value, a.HasValue = v, true
			} else if kv.Value != nil {
				v, _, err := lex.ProcessWord(*kv.Value, sc.global.envGetter())
				if err != nil {
					return errorAt(file, locationOf(cmd.Location()).Line, err)
				}
				a.Value, a.HasValue = v, true
			}
			if _, declared := sc.global.get(a.Key); a.HasValue || !declared {
				sc.global.set(a)
			}
		}
	}
	return nil
}

// proxyEnv lists the proxy args passed with --build-arg the way BuildKit's
// exec op hands them to RUN: each proxy with a non-empty value under both
// spellings (HTTP_PROXY and http_proxy), in the order of proxyArgs. When a
// proxy is passed under both spellings, the lower-case one wins, as in
// BuildKit, which reads the build args in sorted key order.
func proxyEnv(buildArgs map[string]string) []string {
	values := map[string]string{}
	for _, k := range sortedKeys(buildArgs) {
		if isProxyArg(k) {
			values[strings.ToUpper(k)] = buildArgs[k]
		}
	}
	var env []string
	for _, k := range proxyArgs {
		if v := values[k]; v != "" {
			env = append(env, k+"="+v, strings.ToLower(k)+"="+v)
		}
	}
	return env
}

// argList is an ordered set of args; setting an existing key replaces it
// in place, so the order is that of first declaration.
type argList []Arg

func (l *argList) set(a Arg) {
	for i := range *l {
		if (*l)[i].Key == a.Key {
			(*l)[i] = a
			return
		}
	}
	*l = append(*l, a)
}

func (l argList) get(key string) (Arg, bool) {
	for _, a := range l {
		if a.Key == key {
			return a, true
		}
	}
	return Arg{}, false
}

func (l argList) envGetter() shell.EnvGetter {
	var env []string
	for _, a := range l {
		if a.HasValue {
			env = append(env, a.Key+"="+a.Value)
		}
	}
	return shell.EnvsFromSlice(env)
}
