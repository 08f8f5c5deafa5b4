package executor

import (
	"io"
	"io/fs"
	"slices"
	"strings"

	"github.com/strata-build/strata/internal/userdb"
)

// execUser is who the command runs as.
type execUser struct {
	UID, GID int
	Groups   []int // supplementary groups, the primary gid among them as in BuildKit's spec
	Home     string
}

// resolveUser applies docker build's rules for a RUN step's user (package userdb: BuildKit's
// oci.GetUser over moby/sys/user's GetExecUser, with runc's HOME) to the image's own files,
// passwd and group, nil when missing. A file that is not a regular one (a directory, say)
// reads as missing: BuildKit opens them with openfile.Regular and passes nil on any error.
func resolveUser(spec string, passwd, group io.Reader) (execUser, error) {
	u, err := userdb.ExecUser(spec, regularOrNil(passwd), regularOrNil(group))
	if err != nil {
		return execUser{}, err
	}
	return execUser{UID: u.UID, GID: u.GID, Groups: u.Groups, Home: u.Home}, nil
}

// regularOrNil drops a reader that is a file but not a regular one, whose read would fail (a
// directory) or might never end.
func regularOrNil(r io.Reader) io.Reader {
	if f, ok := r.(interface{ Stat() (fs.FileInfo, error) }); ok {
		if fi, err := f.Stat(); err != nil || !fi.Mode().IsRegular() {
			return nil
		}
	}
	return r
}

// withDefaults adds Docker's PATH and the user's HOME when the environment lacks them. As in
// runc (prepareEnv), an empty HOME counts as none: its HOME= entries go and home is added.
func withDefaults(env []string, home string) []string {
	out := append([]string(nil), env...)
	if !hasKey(env, "PATH") {
		out = append(out, "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
	}
	if lookupEnv(env, "HOME") == "" {
		out = deleteKey(out, "HOME")
		out = append(out, "HOME="+home)
	}
	return out
}

// deleteKey removes every key=value entry of key: runc keeps only the last one, so an
// empty last HOME hides the earlier ones too.
func deleteKey(env []string, key string) []string {
	return slices.DeleteFunc(env, func(kv string) bool {
		k, _, _ := strings.Cut(kv, "=")
		return k == key
	})
}

func hasKey(env []string, key string) bool {
	for _, kv := range env {
		if k, _, _ := strings.Cut(kv, "="); k == key {
			return true
		}
	}
	return false
}

func lookupEnv(env []string, key string) string {
	for i := len(env) - 1; i >= 0; i-- {
		if k, v, _ := strings.Cut(env[i], "="); k == key {
			return v
		}
	}
	return ""
}
