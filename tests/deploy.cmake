# Deployment files checked against the programs just built: the systemd
# units with systemd-analyze (verify, security); the settings the
# Kubernetes manifests pass to droverd and drover-worker; and the programs
# run with those settings. The slower checks of the manifests themselves
# (kubectl kustomize, schemas) are in tests/ci/k8s.sh.
add_test(NAME deploy_systemd
  COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/deploy/systemd.sh)
set_tests_properties(deploy_systemd PROPERTIES
  ENVIRONMENT "DROVERD=$<TARGET_FILE:droverd>;DROVER_WORKER=$<TARGET_FILE:drover-worker>;DEPLOY_DIR=${PROJECT_SOURCE_DIR}/deploy/systemd"
  SKIP_RETURN_CODE 77
  TIMEOUT 60)

add_test(NAME deploy_k8s_config
  COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/deploy/k8s-config.sh)
set_tests_properties(deploy_k8s_config PROPERTIES
  ENVIRONMENT "DROVERD=$<TARGET_FILE:droverd>;DROVER_WORKER=$<TARGET_FILE:drover-worker>;DROVER_PLUGIN=$<TARGET_FILE:drover_example_plugin>;BASE=${PROJECT_SOURCE_DIR}/deploy/k8s/base"
  TIMEOUT 60)

# droverd, drover-worker and a producer run with the manifests' settings and
# keys laid out as Secret volumes: admission, live allow-list update, drain
add_test(NAME deploy_k8s_pods
  COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/deploy/k8s-pods.sh)
set_tests_properties(deploy_k8s_pods PROPERTIES
  ENVIRONMENT "DROVERD=$<TARGET_FILE:droverd>;DROVER=$<TARGET_FILE:drover_cli>;DROVER_WORKER=$<TARGET_FILE:drover-worker>;DROVER_PLUGIN=$<TARGET_FILE:drover_example_plugin>;BASE=${PROJECT_SOURCE_DIR}/deploy/k8s/base"
  TIMEOUT 90)
