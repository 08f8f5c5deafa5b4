package executor

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// execUser is who the command runs as.
type execUser struct {
	UID, GID int
	Groups   []int // supplementary groups
	Home     string
}

type passwdEntry struct {
	name     string
	uid, gid int
	home     string
}

type groupEntry struct {
	name    string
	gid     int
	members []string
}

// resolveUser applies Docker's rules (moby/sys/user's GetExecUser) to a USER value: a name
// must exist in passwd, a number need not; an explicit group replaces the primary group and
// skips supplementary groups, otherwise every group listing the user by name is added. An empty
// value means uid 0. Missing files read as empty.
func resolveUser(spec string, passwd, group io.Reader) (execUser, error) {
	userArg, groupArg, _ := strings.Cut(spec, ":")
	if userArg == "" {
		userArg = "0"
	}
	u := execUser{Home: "/"}
	users, err := parsePasswd(passwd)
	if err != nil {
		return u, err
	}
	uid, uidErr := strconv.Atoi(userArg)
	var matched string
	if p, ok := findUser(users, userArg, uid, uidErr == nil); ok {
		matched, u.UID, u.GID, u.Home = p.name, p.uid, p.gid, p.home
	} else if uidErr != nil {
		return u, fmt.Errorf("unable to find user %s: no matching entries in passwd file", userArg)
	} else if err := checkID(uid); err != nil {
		return u, err
	} else {
		u.UID = uid
	}
	if groupArg == "" && matched == "" {
		return u, nil
	}
	groups, err := parseGroup(group)
	if err != nil {
		return u, err
	}
	if groupArg == "" {
		u.Groups = memberOf(groups, matched)
		return u, nil
	}
	u.GID, err = findGroup(groups, groupArg)
	return u, err
}

func findUser(users []passwdEntry, name string, uid int, numeric bool) (passwdEntry, bool) {
	for _, p := range users {
		if (numeric && p.uid == uid) || (!numeric && p.name == name) {
			return p, true
		}
	}
	return passwdEntry{}, false
}

func findGroup(groups []groupEntry, arg string) (int, error) {
	gid, gidErr := strconv.Atoi(arg)
	for _, g := range groups {
		if (gidErr == nil && g.gid == gid) || (gidErr != nil && g.name == arg) {
			return g.gid, nil
		}
	}
	if gidErr != nil {
		return 0, fmt.Errorf("unable to find group %s: no matching entries in group file", arg)
	}
	return gid, checkID(gid)
}

func memberOf(groups []groupEntry, user string) []int {
	var gids []int
	for _, g := range groups {
		for _, m := range g.members {
			if m == user {
				gids = append(gids, g.gid)
				break
			}
		}
	}
	return gids
}

func checkID(id int) error {
	if id < 0 || id > 1<<31-1 {
		return errors.New("uids and gids must be in range 0-2147483647")
	}
	return nil
}

// parsePasswd reads name:password:uid:gid:gecos:home:shell lines, skipping ones it cannot read
// as libc does.
func parsePasswd(r io.Reader) ([]passwdEntry, error) {
	var out []passwdEntry
	err := eachLine(r, func(f []string) {
		if len(f) < 4 {
			return
		}
		uid, err1 := strconv.Atoi(f[2])
		gid, err2 := strconv.Atoi(f[3])
		if err1 != nil || err2 != nil {
			return
		}
		p := passwdEntry{name: f[0], uid: uid, gid: gid}
		if len(f) > 5 {
			p.home = f[5]
		}
		out = append(out, p)
	})
	if err != nil {
		return nil, fmt.Errorf("reading /etc/passwd: %w", err)
	}
	return out, nil
}

// parseGroup reads name:password:gid:member,member lines.
func parseGroup(r io.Reader) ([]groupEntry, error) {
	var out []groupEntry
	err := eachLine(r, func(f []string) {
		if len(f) < 3 {
			return
		}
		gid, err := strconv.Atoi(f[2])
		if err != nil {
			return
		}
		g := groupEntry{name: f[0], gid: gid}
		if len(f) > 3 && f[3] != "" {
			g.members = strings.Split(f[3], ",")
		}
		out = append(out, g)
	})
	if err != nil {
		return nil, fmt.Errorf("reading /etc/group: %w", err)
	}
	return out, nil
}

func eachLine(r io.Reader, fn func(fields []string)) error {
	if r == nil {
		return nil
	}
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		fn(strings.Split(line, ":"))
	}
	return sc.Err()
}

// withDefaults adds Docker's PATH and the user's HOME when the environment lacks them.
func withDefaults(env []string, home string) []string {
	out := append([]string(nil), env...)
	if !hasKey(env, "PATH") {
		out = append(out, "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
	}
	if !hasKey(env, "HOME") {
		out = append(out, "HOME="+home)
	}
	return out
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
