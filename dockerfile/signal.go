package dockerfile

import (
	"fmt"
	"strconv"
	"strings"
)

// linuxSignals are the names moby's signal.ParseSignal (which BuildKit uses
// for STOPSIGNAL) knows on Linux, with their numbers. The image config
// keeps STOPSIGNAL as written; the table only decides what is valid.
var linuxSignals = map[string]int{
	"HUP": 1, "INT": 2, "QUIT": 3, "ILL": 4, "TRAP": 5, "ABRT": 6, "IOT": 6,
	"BUS": 7, "FPE": 8, "KILL": 9, "USR1": 10, "SEGV": 11, "USR2": 12,
	"PIPE": 13, "ALRM": 14, "TERM": 15, "STKFLT": 16, "CHLD": 17, "CLD": 17,
	"CONT": 18, "STOP": 19, "TSTP": 20, "TTIN": 21, "TTOU": 22, "URG": 23,
	"XCPU": 24, "XFSZ": 25, "VTALRM": 26, "PROF": 27, "WINCH": 28, "IO": 29,
	"POLL": 29, "PWR": 30, "SYS": 31,
}

// Real-time signals are named RTMIN, RTMIN+1 ... RTMIN+15, RTMAX-14 ...
// RTMAX-1 and RTMAX, as in moby's table.
const (
	sigRTMin = 34
	sigRTMax = 64
)

// checkSignal accepts what moby's signal.ParseSignal accepts: a non-zero
// number, or a signal name, upper or lower case, with or without "SIG".
func checkSignal(s string) error {
	if n, err := strconv.Atoi(s); err == nil {
		if n == 0 {
			return fmt.Errorf("STOPSIGNAL: invalid signal: %s", s)
		}
		return nil
	}
	if _, ok := signalNumber(strings.TrimPrefix(strings.ToUpper(s), "SIG")); !ok {
		return fmt.Errorf("STOPSIGNAL: invalid signal: %s", s)
	}
	return nil
}

func signalNumber(name string) (int, bool) {
	if n, ok := linuxSignals[name]; ok {
		return n, true
	}
	if rest, ok := strings.CutPrefix(name, "RTMIN"); ok {
		off, ok := rtOffset(rest, "+", 15)
		return sigRTMin + off, ok
	}
	if rest, ok := strings.CutPrefix(name, "RTMAX"); ok {
		off, ok := rtOffset(rest, "-", 14)
		return sigRTMax - off, ok
	}
	return 0, false
}

// rtOffset parses the "+n" or "-n" after RTMIN or RTMAX; "" is 0.
func rtOffset(s, sign string, maxOff int) (int, bool) {
	if s == "" {
		return 0, true
	}
	digits, ok := strings.CutPrefix(s, sign)
	n, err := strconv.Atoi(digits)
	if !ok || err != nil || n < 1 || n > maxOff || strconv.Itoa(n) != digits {
		return 0, false
	}
	return n, true
}
