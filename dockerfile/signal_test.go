package dockerfile

import "testing"

func TestCheckSignal(t *testing.T) {
	tests := map[string]bool{
		"SIGTERM": true, "TERM": true, "term": true, "SigKill": true,
		"9": true, "15": true, "-3": true, "0": false,
		"SIGRTMIN": true, "RTMIN+15": true, "RTMIN+16": false, "RTMIN+01": false,
		"SIGRTMAX": true, "RTMAX-14": true, "RTMAX-15": false, "RTMAX+1": false,
		"BOGUS": false, "SIG": false, "": false, "SIGSIGTERM": false,
	}
	for in, valid := range tests {
		if err := checkSignal(in); (err == nil) != valid {
			t.Errorf("checkSignal(%q) = %v, want valid %t", in, err, valid)
		}
	}
}
