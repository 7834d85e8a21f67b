package main

import "testing"

func TestParseSize(t *testing.T) {
	tests := []struct {
		in      string
		want    int64
		wantErr bool
	}{
		{in: "4096", want: 4096},
		{in: "1K", want: 1024},
		{in: "256M", want: 256 << 20},
		{in: "1G", want: 1 << 30},
		{in: "2GiB", want: 2 << 30},
		{in: "1t", want: 1 << 40},
		{in: "", wantErr: true},
		{in: "-1", wantErr: true},
		{in: "12X", wantErr: true},
		{in: "99999999999T", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := parseSize(tt.in)
			if (err != nil) != tt.wantErr {
				t.Fatalf("parseSize(%q) error = %v, want error %v", tt.in, err, tt.wantErr)
			}
			if got != tt.want {
				t.Errorf("parseSize(%q) = %d, want %d", tt.in, got, tt.want)
			}
		})
	}
}
