//go:build !linux

package main

import "errors"

func reboot() error { return errors.New("deviceagent: rebooting needs Linux") }
