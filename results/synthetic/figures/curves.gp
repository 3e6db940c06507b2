set terminal pngcairo size 900,360 font 'sans,10'
set grid
set key outside right
set output 'results/synthetic/figures/motion_loss.png'
set title 'GLOCAL self-supervised training'
set xlabel 'step'
set ylabel 'loss'
set logscale y
plot 'results/synthetic/stages/motion/loss.dat' using 1:2 with lines lw 2 title 'loss'
unset logscale y
set output 'results/synthetic/figures/classifier_loss.png'
set title 'classifiers: training loss'
set xlabel 'epoch'
set ylabel 'loss'
plot 'results/synthetic/stages/train-rgb/loss.dat' using 1:2 with linespoints lw 2 title 'rgb', 'results/synthetic/stages/train-tvl1/loss.dat' using 1:2 with linespoints lw 2 title 'tvl1', 'results/synthetic/stages/train-tvl1-minus-homography/loss.dat' using 1:2 with linespoints lw 2 title 'tvl1-minus-homography', 'results/synthetic/stages/train-glocal-local/loss.dat' using 1:2 with linespoints lw 2 title 'glocal-local', 'results/synthetic/stages/train-glocal-residual/loss.dat' using 1:2 with linespoints lw 2 title 'glocal-residual', 'results/synthetic/stages/train-glocal-mixed/loss.dat' using 1:2 with linespoints lw 2 title 'glocal-mixed', 'results/synthetic/stages/train-glocal-lme-local/loss.dat' using 1:2 with linespoints lw 2 title 'glocal-lme-local', 'results/synthetic/stages/train-glocal-lme-residual/loss.dat' using 1:2 with linespoints lw 2 title 'glocal-lme-residual'
set output 'results/synthetic/figures/classifier_accuracy.png'
set title 'classifiers: training accuracy'
set xlabel 'epoch'
set ylabel 'accuracy'
plot 'results/synthetic/stages/train-rgb/accuracy.dat' using 1:2 with linespoints lw 2 title 'rgb', 'results/synthetic/stages/train-tvl1/accuracy.dat' using 1:2 with linespoints lw 2 title 'tvl1', 'results/synthetic/stages/train-tvl1-minus-homography/accuracy.dat' using 1:2 with linespoints lw 2 title 'tvl1-minus-homography', 'results/synthetic/stages/train-glocal-local/accuracy.dat' using 1:2 with linespoints lw 2 title 'glocal-local', 'results/synthetic/stages/train-glocal-residual/accuracy.dat' using 1:2 with linespoints lw 2 title 'glocal-residual', 'results/synthetic/stages/train-glocal-mixed/accuracy.dat' using 1:2 with linespoints lw 2 title 'glocal-mixed', 'results/synthetic/stages/train-glocal-lme-local/accuracy.dat' using 1:2 with linespoints lw 2 title 'glocal-lme-local', 'results/synthetic/stages/train-glocal-lme-residual/accuracy.dat' using 1:2 with linespoints lw 2 title 'glocal-lme-residual'
reset
set terminal pngcairo size 736,656 font 'sans,9'
set output 'results/synthetic/figures/confusion-rgb.png'
set datafile separator ','
unset key
set xtics rotate by 45 right
set yrange [] reverse
set autoscale xfix
set autoscale yfix
set palette defined (0 'white', 1 '#08306b')
set cblabel 'clips'
set title 'rgb: test clips (rows: true class, columns: predicted)'
plot 'results/synthetic/stages/evaluate-rgb/confusion.csv' matrix rowheaders columnheaders using 1:2:3 with image, '' matrix rowheaders columnheaders using 1:2:($3 > 0 ? sprintf('%d', $3) : '') with labels
reset
set terminal pngcairo size 736,656 font 'sans,9'
set output 'results/synthetic/figures/confusion-tvl1.png'
set datafile separator ','
unset key
set xtics rotate by 45 right
set yrange [] reverse
set autoscale xfix
set autoscale yfix
set palette defined (0 'white', 1 '#08306b')
set cblabel 'clips'
set title 'tvl1: test clips (rows: true class, columns: predicted)'
plot 'results/synthetic/stages/evaluate-tvl1/confusion.csv' matrix rowheaders columnheaders using 1:2:3 with image, '' matrix rowheaders columnheaders using 1:2:($3 > 0 ? sprintf('%d', $3) : '') with labels
reset
set terminal pngcairo size 736,656 font 'sans,9'
set output 'results/synthetic/figures/confusion-tvl1-minus-homography.png'
set datafile separator ','
unset key
set xtics rotate by 45 right
set yrange [] reverse
set autoscale xfix
set autoscale yfix
set palette defined (0 'white', 1 '#08306b')
set cblabel 'clips'
set title 'tvl1-minus-homography: test clips (rows: true class, columns: predicted)'
plot 'results/synthetic/stages/evaluate-tvl1-minus-homography/confusion.csv' matrix rowheaders columnheaders using 1:2:3 with image, '' matrix rowheaders columnheaders using 1:2:($3 > 0 ? sprintf('%d', $3) : '') with labels
reset
set terminal pngcairo size 736,656 font 'sans,9'
set output 'results/synthetic/figures/confusion-glocal-local.png'
set datafile separator ','
unset key
set xtics rotate by 45 right
set yrange [] reverse
set autoscale xfix
set autoscale yfix
set palette defined (0 'white', 1 '#08306b')
set cblabel 'clips'
set title 'glocal-local: test clips (rows: true class, columns: predicted)'
plot 'results/synthetic/stages/evaluate-glocal-local/confusion.csv' matrix rowheaders columnheaders using 1:2:3 with image, '' matrix rowheaders columnheaders using 1:2:($3 > 0 ? sprintf('%d', $3) : '') with labels
reset
set terminal pngcairo size 736,656 font 'sans,9'
set output 'results/synthetic/figures/confusion-glocal-residual.png'
set datafile separator ','
unset key
set xtics rotate by 45 right
set yrange [] reverse
set autoscale xfix
set autoscale yfix
set palette defined (0 'white', 1 '#08306b')
set cblabel 'clips'
set title 'glocal-residual: test clips (rows: true class, columns: predicted)'
plot 'results/synthetic/stages/evaluate-glocal-residual/confusion.csv' matrix rowheaders columnheaders using 1:2:3 with image, '' matrix rowheaders columnheaders using 1:2:($3 > 0 ? sprintf('%d', $3) : '') with labels
reset
set terminal pngcairo size 736,656 font 'sans,9'
set output 'results/synthetic/figures/confusion-glocal-mixed.png'
set datafile separator ','
unset key
set xtics rotate by 45 right
set yrange [] reverse
set autoscale xfix
set autoscale yfix
set palette defined (0 'white', 1 '#08306b')
set cblabel 'clips'
set title 'glocal-mixed: test clips (rows: true class, columns: predicted)'
plot 'results/synthetic/stages/evaluate-glocal-mixed/confusion.csv' matrix rowheaders columnheaders using 1:2:3 with image, '' matrix rowheaders columnheaders using 1:2:($3 > 0 ? sprintf('%d', $3) : '') with labels
reset
set terminal pngcairo size 736,656 font 'sans,9'
set output 'results/synthetic/figures/confusion-glocal-lme-local.png'
set datafile separator ','
unset key
set xtics rotate by 45 right
set yrange [] reverse
set autoscale xfix
set autoscale yfix
set palette defined (0 'white', 1 '#08306b')
set cblabel 'clips'
set title 'glocal-lme-local: test clips (rows: true class, columns: predicted)'
plot 'results/synthetic/stages/evaluate-glocal-lme-local/confusion.csv' matrix rowheaders columnheaders using 1:2:3 with image, '' matrix rowheaders columnheaders using 1:2:($3 > 0 ? sprintf('%d', $3) : '') with labels
reset
set terminal pngcairo size 736,656 font 'sans,9'
set output 'results/synthetic/figures/confusion-glocal-lme-residual.png'
set datafile separator ','
unset key
set xtics rotate by 45 right
set yrange [] reverse
set autoscale xfix
set autoscale yfix
set palette defined (0 'white', 1 '#08306b')
set cblabel 'clips'
set title 'glocal-lme-residual: test clips (rows: true class, columns: predicted)'
plot 'results/synthetic/stages/evaluate-glocal-lme-residual/confusion.csv' matrix rowheaders columnheaders using 1:2:3 with image, '' matrix rowheaders columnheaders using 1:2:($3 > 0 ? sprintf('%d', $3) : '') with labels
