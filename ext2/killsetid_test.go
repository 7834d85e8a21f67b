package ext2

import "testing"

func TestSetIDToKill(t *testing.T) {
	for _, tc := range []struct {
		name       string
		mode, want uint16
	}{
		{"plain", 0o100755, 0o100755},
		{"setuid", 0o104755, 0o100755},
		{"setgid with group execute", 0o102755, 0o100755},
		{"setgid without group execute", 0o102745, 0o102745},
		{"both", 0o106777, 0o100777},
		{"both without group execute", 0o106767, 0o102767},
		{"sticky stays", 0o101777, 0o101777},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := SetIDToKill(tc.mode); got != tc.want {
				t.Errorf("SetIDToKill(%o): got %o, want %o", tc.mode, got, tc.want)
			}
		})
	}
}
