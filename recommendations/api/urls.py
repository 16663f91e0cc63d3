from rest_framework.routers import SimpleRouter

from .views import DeviceGroupViewSet, RecommendationViewSet

router = SimpleRouter()
router.register("recommendations", RecommendationViewSet, basename="recommendation")
router.register("device-groups", DeviceGroupViewSet, basename="device-group")

urlpatterns = router.urls
