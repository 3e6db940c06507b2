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
plot 'results/synthetic/stages/train-rgb/loss.dat' using 1:2 with linespoints lw 2 title 'rgb', 'results/synthetic/stages/train-tvl1/loss.dat' using 1:2 with linespoints lw 2 title 'tvl1', 'results/synthetic/stages/train-tvl1-minus-homography/loss.dat' using 1:2 with linespoints lw 2 title 'tvl1-minus-homography', 'results/synthetic/stages/train-glocal-local/loss.dat' using 1:2 with linespoints lw 2 title 'glocal-local', 'results/synthetic/stages/train-glocal-residual/loss.dat' using 1:2 with linespoints lw 2 title 'glocal-residual', 'results/synthetic/stages/train-glocal-mixed/loss.dat' using 1:2 with linespoints lw 2 title 'glocal-mixed'
set output 'results/synthetic/figures/classifier_accuracy.png'
set title 'classifiers: training accuracy'
set xlabel 'epoch'
set ylabel 'accuracy'
plot 'results/synthetic/stages/train-rgb/accuracy.dat' using 1:2 with linespoints lw 2 title 'rgb', 'results/synthetic/stages/train-tvl1/accuracy.dat' using 1:2 with linespoints lw 2 title 'tvl1', 'results/synthetic/stages/train-tvl1-minus-homography/accuracy.dat' using 1:2 with linespoints lw 2 title 'tvl1-minus-homography', 'results/synthetic/stages/train-glocal-local/accuracy.dat' using 1:2 with linespoints lw 2 title 'glocal-local', 'results/synthetic/stages/train-glocal-residual/accuracy.dat' using 1:2 with linespoints lw 2 title 'glocal-residual', 'results/synthetic/stages/train-glocal-mixed/accuracy.dat' using 1:2 with linespoints lw 2 title 'glocal-mixed'
