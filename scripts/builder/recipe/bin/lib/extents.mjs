// A file's data extents (where it holds data, not holes), from lseek's SEEK_DATA and SEEK_HOLE.
import { $ } from 'zx';

// Prints "start end" for each data extent of the file (whence 3 is SEEK_DATA, 4 SEEK_HOLE): Node
// has no lseek(SEEK_DATA/SEEK_HOLE); Perl's sysseek has.
const seekExtents = `
  open(my $f, "<", $ARGV[0]) or die "$ARGV[0]: $!";
  my $end = -s $f;
  for (my $pos = 0; $pos < $end; ) {
    my $data = sysseek($f, $pos, 3);
    last unless defined $data;
    my $hole = sysseek($f, $data, 4);
    print $data + 0, " ", $hole + 0, "\\n";
    $pos = $hole;
  }`;

/** The file's data extents, [start, end) byte pairs in order. */
export async function dataExtents(file) {
  const lines = (await $({ quiet: true })`perl -e ${seekExtents} ${file}`).stdout.trim().split('\n').filter(Boolean);
  return lines.map((line) => line.split(' ').map(Number));
}
