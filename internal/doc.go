// Package internal holds helpers shared by otaseal's packages. Subpackages
// are added as the packages that need them land.
package internal
